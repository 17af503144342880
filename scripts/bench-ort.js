#!/usr/bin/env node
// scripts/bench-ort.js - ONNX Runtime (onnxruntime-node, CPU EP) eval throughput, for scripts/bench.
//
//   node scripts/bench-ort.js MODEL.onnx IMAGES.npy LABELS.npy BATCH [THREADS [MAX_SECONDS]]
//
// IMAGES.npy: float32 [N, 1, 28, 28] already normalised; LABELS.npy: int64 [N].
// Runs one warm-up batch, then all N images in batches of BATCH (the last may be
// shorter), and prints one JSON line: engine, batch, n, seconds, images_per_s,
// correct (top-1 count, to check the engines compute the same thing) and
// peak_rss_kb (the process's peak resident memory, ru_maxrss).  With MAX_SECONDS the
// run stops after the first batch that ends past that time, and n counts the images
// done (scripts/bench's batch-size sweep uses it to bound slow configurations).
//
// With BENCH_ORT_PROFILE=1, ONNX Runtime's own profiler records the timed runs and the
// time per operator type (its optimised graph's nodes, e.g. fused Conv) goes to stderr,
// to set beside dfq's per-step profile (src/tools/bench_model --profile).
//
// onnxruntime-node is looked up in $DFQ_ORT_DIR/node_modules (default
// /var/tmp/dfq-ort), installed there by scripts/bench with
// ONNXRUNTIME_NODE_INSTALL=skip (its install script would download GPU extras).
'use strict';
const fs = require('fs');
const path = require('path');

const ortDir = process.env.DFQ_ORT_DIR || '/var/tmp/dfq-ort';
let ort;
try {
	ort = require(path.join(ortDir, 'node_modules', 'onnxruntime-node'));
} catch (e) {
	if (e.code !== 'MODULE_NOT_FOUND')
		throw e;
	console.error(`bench-ort: no onnxruntime-node in ${ortDir}/node_modules: run scripts/setup-bench, then scripts/bench (which installs it there)`);
	process.exit(2);
}

// Minimal .npy reader: little-endian <f4 or <i8, C order.
function readNpy(file) {
	const buf = fs.readFileSync(file);
	if (buf.toString('latin1', 0, 6) !== '\x93NUMPY')
		throw new Error(`${file}: not a .npy file`);
	const major = buf[6];
	const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
	const hstart = major === 1 ? 10 : 12;
	const header = buf.toString('latin1', hstart, hstart + hlen);
	const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
	if (/'fortran_order':\s*True/.test(header))
		throw new Error(`${file}: Fortran order is not supported`);
	const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',')
		.map((s) => s.trim()).filter((s) => s.length).map(Number);
	const off = hstart + hlen;
	// copy into an aligned buffer: typed arrays need an element-aligned offset
	const bytes = buf.subarray(off);
	const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
	if (descr === '<f4')
		return { shape, data: new Float32Array(ab) };
	if (descr === '<i8')
		return { shape, data: new BigInt64Array(ab) };
	throw new Error(`${file}: dtype ${descr} is not supported`);
}

function argmax(a, off, len) {
	let best = 0;
	for (let j = 1; j < len; j++)
		if (a[off + j] > a[off + best])
			best = j;
	return best;
}

// Sum ONNX Runtime's profile (a JSON trace it writes at endProfiling) per operator type.
function printProfile(session, images) {
	session.endProfiling();
	const dir = require('os').tmpdir();
	const prefix = `bench-ort-${process.pid}`;
	for (const f of fs.readdirSync(dir).filter((f) => f.startsWith(prefix))) {
		const file = path.join(dir, f);
		const byOp = new Map();
		let total = 0;
		for (const ev of JSON.parse(fs.readFileSync(file, 'utf8'))) {
			if (ev.cat !== 'Node' || !ev.name.endsWith('_kernel_time'))
				continue;
			const op = (ev.args && ev.args.op_name) || '?';
			byOp.set(op, (byOp.get(op) || 0) + ev.dur);
			total += ev.dur;
		}
		fs.unlinkSync(file);
		console.error(`ONNX Runtime profile (kernel time, us per image, incl. warm-up):`);
		for (const [op, us] of [...byOp].sort((a, b) => b[1] - a[1]))
			console.error(`  ${op.padEnd(28)} ${(us / images).toFixed(2).padStart(9)}  ` +
				`${(100 * us / total).toFixed(1).padStart(5)}%`);
		console.error(`  ${'total'.padEnd(28)} ${(total / images).toFixed(2).padStart(9)}`);
	}
}

async function main() {
	const [model, imagesPath, labelsPath, batchArg, threadsArg, maxArg] = process.argv.slice(2);
	if (!batchArg) {
		console.error('usage: bench-ort.js MODEL.onnx IMAGES.npy LABELS.npy BATCH [THREADS [MAX_SECONDS]]');
		process.exit(2);
	}
	const batch = Number(batchArg);
	const threads = Number(threadsArg || 2);
	const maxSeconds = maxArg ? Number(maxArg) : Infinity;
	const images = readNpy(imagesPath);
	const labels = readNpy(labelsPath);
	const [n, c, h, w] = images.shape;
	const per = c * h * w;

	const profile = process.env.BENCH_ORT_PROFILE === '1';
	const os = require('os');
	const session = await ort.InferenceSession.create(model, {
		executionProviders: ['cpu'],
		intraOpNumThreads: threads,
		interOpNumThreads: 1,
		executionMode: 'sequential',
		graphOptimizationLevel: 'all',
		enableProfiling: profile,
		profileFilePrefix: path.join(os.tmpdir(), `bench-ort-${process.pid}`),
	});
	const inName = session.inputNames[0];
	const outName = session.outputNames[0];
	const run = async (start, count) => {
		const x = new ort.Tensor('float32', images.data.subarray(start * per, (start + count) * per),
			[count, c, h, w]);
		const res = await session.run({ [inName]: x });
		return res[outName];
	};

	await run(0, Math.min(batch, n)); // warm-up: first-run allocations and planning
	let correct = 0, done = 0;
	const t0 = process.hrtime.bigint();
	const elapsed = () => Number(process.hrtime.bigint() - t0) / 1e9;
	for (let s = 0; s < n && elapsed() < maxSeconds; s += batch) {
		const count = Math.min(batch, n - s);
		done += count;
		const y = await run(s, count);
		const k = y.dims[1];
		for (let i = 0; i < count; i++)
			if (BigInt(argmax(y.data, i * k, k)) === labels.data[s + i])
				correct++;
	}
	const seconds = elapsed();
	if (profile)
		printProfile(session, done);
	console.log(JSON.stringify({
		engine: 'ort',
		version: require(path.join(ortDir, 'node_modules', 'onnxruntime-node', 'package.json')).version,
		batch, n: done, threads, seconds, images_per_s: done / seconds, correct,
		peak_rss_kb: process.resourceUsage().maxRSS,
	}));
}

main().catch((e) => {
	console.error(`bench-ort: ${e.message || e}`);
	process.exit(1);
});
