#!/usr/bin/env node
// tests/export-ort.js - ONNX Runtime (onnxruntime-node, CPU) on the models dfq exports, for
// tests/export-ort.
//
//   node tests/export-ort.js prepare DIR N CHUNK
//       the first N Fashion-MNIST test images, normalised as dfq does ((x/255 - 0.286) / 0.353 in
//       float32), into DIR/x0.npy, DIR/x1.npy, ... (CHUNK images each) for dfq's infer
//   node tests/export-ort.js check NAME MODEL.onnx DIR N CHUNK KIND [ENCODINGS.json GRIDS]
//       runs MODEL on the same images and compares with dfq's logits DIR/NAME-y0.npy, ...:
//       KIND fp32: max |logit diff| <= 1e-4 max |logit|;
//       KIND qdq:  top-1 within 0.3 points of dfq's; the logits on the output's grid (its
//                  scale in ENCODINGS.json, from dfq's export-encodings): at least 99.5% of
//                  them within one step of dfq's, none more than 4 steps away.  Float
//                  rounding alone moves some: dfq's own fast and scalar kernels put 4.9% of
//                  the W8A8 logits on another code, at most 2 steps away.  Also checks the
//                  encodings file: every entry's fields, min/max/offset/scale consistent,
//                  and GRIDS entries for the classifier's weights (1, or 10 per channel).
//       Prints one line per check ("ok ..." or "FAIL ...") and a line of numbers ("# ...").
//
// onnxruntime-node is looked up in $DFQ_ORT_DIR/node_modules (default /var/tmp/dfq-ort), where
// scripts/setup installs it.  Exit status: 0 all passed, 1 a check failed, 2 cannot run.
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');

const DATA = process.env.DFQ_FMNIST_DIR || '/usr/share/datasets/fashion-mnist';
const MEAN = Math.fround(0.286), STD = Math.fround(0.353);

function readIdx(file) {
	const buf = zlib.gunzipSync(fs.readFileSync(file));
	const ndim = buf[3];
	const dims = [];
	for (let i = 0; i < ndim; i++)
		dims.push(buf.readUInt32BE(4 + 4 * i));
	return { dims, data: buf.subarray(4 + 4 * ndim) };
}

function writeNpy(file, shape, f32) {
	let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
	const total = 10 + header.length + 1;
	header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
	const pre = Buffer.alloc(10);
	pre.write('\x93NUMPY', 0, 'latin1');
	pre[6] = 1;
	pre[7] = 0;
	pre.writeUInt16LE(header.length, 8);
	fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'),
		Buffer.from(f32.buffer, f32.byteOffset, f32.byteLength)]));
}

function readNpyF32(file) {
	const buf = fs.readFileSync(file);
	if (buf.toString('latin1', 0, 6) !== '\x93NUMPY')
		throw new Error(`${file}: not a .npy file`);
	const major = buf[6];
	const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
	const hstart = major === 1 ? 10 : 12;
	const header = buf.toString('latin1', hstart, hstart + hlen);
	if (!/'descr':\s*'<f4'/.test(header))
		throw new Error(`${file}: not float32`);
	const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',')
		.map((s) => s.trim()).filter((s) => s.length).map(Number);
	const bytes = buf.subarray(hstart + hlen);
	const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
	return { shape, data: new Float32Array(ab) };
}

function images(n) {
	const im = readIdx(path.join(DATA, 't10k-images-idx3-ubyte.gz'));
	const lb = readIdx(path.join(DATA, 't10k-labels-idx1-ubyte.gz'));
	const plane = im.dims[1] * im.dims[2];
	const x = new Float32Array(n * plane);
	for (let i = 0; i < n * plane; i++) {
		// float32 at every step, as dfq's normalise() computes it
		const v = Math.fround(im.data[i] / 255);
		x[i] = Math.fround(Math.fround(v - MEAN) / STD);
	}
	return { x, labels: lb.data.subarray(0, n), plane, h: im.dims[1], w: im.dims[2] };
}

function argmax(a, off, k) {
	let best = 0;
	for (let j = 1; j < k; j++)
		if (a[off + j] > a[off + best])
			best = j;
	return best;
}

// The AIMET encodings file: its two maps, each entry a list of well-formed encodings (min and
// max the grid's ends: offset * scale and (offset + 2^bits - 1) * scale), grids entries for the
// classifier's weights.
function encodingsOk(enc, grids) {
	if (!enc || typeof enc.activation_encodings !== 'object' || typeof enc.param_encodings !== 'object')
		return false;
	const good = (e) => Number.isInteger(e.bitwidth) && e.dtype === 'int' &&
		(e.is_symmetric === 'True' || e.is_symmetric === 'False') && Number.isInteger(e.offset) &&
		e.scale > 0 && Math.abs(e.min - e.offset * e.scale) <= 1e-6 * Math.abs(e.min) + 1e-12 &&
		Math.abs(e.max - (e.offset + 2 ** e.bitwidth - 1) * e.scale) <= 1e-6 * Math.abs(e.max) + 1e-12;
	for (const map of [enc.activation_encodings, enc.param_encodings])
		for (const key of Object.keys(map))
			if (!Array.isArray(map[key]) || map[key].length < 1 || !map[key].every(good))
				return false;
	const c = enc.param_encodings['classifier.weight'];
	return Array.isArray(c) && c.length === grids;
}

async function check(args) {
	const [name, model, dir, nArg, chunkArg, kind, encFile, gridsArg] = args;
	const n = Number(nArg), chunk = Number(chunkArg);
	const ortDir = process.env.DFQ_ORT_DIR || '/var/tmp/dfq-ort';
	const ort = require(path.join(ortDir, 'node_modules', 'onnxruntime-node'));
	// no graph optimisations: ONNX Runtime runs the exported graph as written (its QDQ
	// fusions would compute in integers and round differently from the QDQ semantics)
	const opt = process.env.DFQ_ORT_OPT || 'disabled';
	const sess = await ort.InferenceSession.create(model, {
		graphOptimizationLevel: opt, intraOpNumThreads: 2, interOpNumThreads: 1,
	});
	let step = 0, enc = null;
	if (encFile) {
		enc = JSON.parse(fs.readFileSync(encFile, 'utf8'));
		const e = enc.activation_encodings && enc.activation_encodings[sess.outputNames[0]];
		step = e ? e[0].scale : 0;
	}
	const d = images(n);
	let maxDiff = 0, maxRef = 0, ortOk = 0, dfqOk = 0, agree = 0, k = 10, off = 0, offSamples = 0;
	let beyond = 0;
	for (let c = 0; c * chunk < n; c++) {
		const b = Math.min(chunk, n - c * chunk);
		const x = d.x.subarray(c * chunk * d.plane, (c * chunk + b) * d.plane);
		const feeds = {};
		feeds[sess.inputNames[0]] = new ort.Tensor('float32', Float32Array.from(x), [b, 1, d.h, d.w]);
		const out = (await sess.run(feeds))[sess.outputNames[0]];
		const ref = readNpyF32(path.join(dir, `${name}-y${c}.npy`));
		k = out.dims[1];
		if (ref.data.length !== out.data.length)
			throw new Error(`${name}: dfq's logits ${ref.shape} and ONNX Runtime's ${out.dims} differ in shape`);
		for (let i = 0; i < ref.data.length; i++) {
			maxDiff = Math.max(maxDiff, Math.abs(ref.data[i] - out.data[i]));
			maxRef = Math.max(maxRef, Math.abs(ref.data[i]));
		}
		for (let i = 0; step && i < b; i++) {
			let any = false;
			for (let j = 0; j < k; j++) {
				const dd = Math.abs(ref.data[i * k + j] - out.data[i * k + j]);
				if (dd > step / 2) {
					off++;
					any = true;
				}
				beyond += dd > 1.001 * step;
			}
			offSamples += any;
		}
		for (let i = 0; i < b; i++) {
			const lab = d.labels[c * chunk + i];
			const a = argmax(out.data, i * k, k), r = argmax(ref.data, i * k, k);
			ortOk += a === lab;
			dfqOk += r === lab;
			agree += a === r;
		}
	}
	const pct = (v) => (100 * v / n).toFixed(2);
	console.log(`# ${name}: ${n} images, ORT top-1 ${pct(ortOk)}%, dfq top-1 ${pct(dfqOk)}%, ` +
		`same class ${agree}/${n}, max |logit diff| ${maxDiff.toExponential(3)}, ` +
		`max |logit| ${maxRef.toFixed(3)}` + (step ? `, ${(maxDiff / step).toFixed(3)} grid steps of ${step.toPrecision(4)}; ` +
		`${off} of ${n * k} logits on another code (${beyond} more than one step away), in ${offSamples} images` : '') +
		` (ORT optimisation ${opt})`);
	let failed = 0;
	const report = (ok, what) => {
		console.log(`${ok ? 'ok' : 'FAIL'} ${name}: ${what}`);
		failed += !ok;
	};
	if (kind === 'fp32') {
		report(maxDiff <= 1e-4 * maxRef,
			`float logits agree: max |diff| ${maxDiff.toExponential(2)} <= 1e-4 x ${maxRef.toFixed(3)}`);
	} else {
		const dp = Math.abs(100 * (ortOk - dfqOk) / n);
		report(dp <= 0.3, `top-1 ${pct(ortOk)}% vs dfq ${pct(dfqOk)}%: ${dp.toFixed(2)} <= 0.3 points`);
		if (!step) {
			report(false, `the output '${sess.outputNames[0]}' has no grid in ${encFile}`);
		} else {
			report(beyond <= 0.005 * n * k, `${beyond} of ${n * k} logits more than one output step (${step.toPrecision(4)}) from dfq's: <= 0.5%`);
			report(maxDiff <= 4 * step, `max |logit diff| ${(maxDiff / step).toFixed(2)} output steps <= 4`);
		}
		report(encodingsOk(enc, Number(gridsArg)), `${encFile}: ${Object.keys(enc.activation_encodings || {}).length} activation and ` +
			`${Object.keys(enc.param_encodings || {}).length} param entries well formed, ${gridsArg} grid(s) for classifier.weight`);
	}
	return failed ? 1 : 0;
}

async function main() {
	const [cmd, ...args] = process.argv.slice(2);
	if (cmd === 'prepare') {
		const [dir, nArg, chunkArg] = args;
		const n = Number(nArg), chunk = Number(chunkArg);
		const d = images(n);
		for (let c = 0; c * chunk < n; c++) {
			const b = Math.min(chunk, n - c * chunk);
			writeNpy(path.join(dir, `x${c}.npy`), [b, 1, d.h, d.w],
				d.x.subarray(c * chunk * d.plane, (c * chunk + b) * d.plane));
		}
		return 0;
	}
	if (cmd === 'check')
		return check(args);
	console.error('usage: export-ort.js prepare DIR N CHUNK | check NAME MODEL DIR N CHUNK KIND [STEP]');
	return 2;
}

main().then((rc) => process.exit(rc), (e) => {
	console.error(`export-ort.js: ${e.message}`);
	process.exit(2);
});
