/* cmd-pin.c - mixed precision as steps: float (keep layers in FP32) and bits (a layer's own bit
 * widths).  Both pin the layers (dfq_model_pin): a later quantize, of all layers or of these,
 * skips the float ones and gives the others their pinned bits; undo takes a pin back. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model-cmd.h"

struct pin_arg {
	const bool *sel;
	struct dfq_pin pin;
};

static dfq_status pin_fn(struct dfq_model *m, void *arg, struct dfq_step_report *rep,
                         struct dfq_error *err)
{
	struct pin_arg *p = arg;
	return dfq_model_pin(m, p->sel, &p->pin, rep, err);
}

/* "W8 -> W4A8", "W8 -> FP32": the weight bits before, what the layer runs with after. */
static bool pin_row(const struct dfq_model *m, const struct dfq_step_row *r, char *buf, size_t len)
{
	char before[24], after[24];
	if (r->before > 0)
		snprintf(before, sizeof before, "W%.0f", r->before);
	else
		snprintf(before, sizeof before, "FP32");
	if (r->after > 0 && !isnan(r->extra) && r->extra > 0)
		snprintf(after, sizeof after, "W%.0fA%.0f", r->after, r->extra);
	else if (r->after > 0)
		snprintf(after, sizeof after, "W%.0f", r->after);
	else
		snprintf(after, sizeof after, "FP32");
	snprintf(buf, len, "%s -> %s", before, after);
	return true;
}

static const struct mc_row_keys pin_keys = {"wbits_before", "wbits", NULL, NULL, "abits"};

static enum cmd_retval run_pin(struct cmd_ctx *ctx, const struct dfq_pin *pin)
{
	struct pin_arg pa = {.sel = ctx->sel, .pin = *pin};
	struct dfq_step_report rep;
	enum cmd_retval rv = mc_step(ctx, false, pin_fn, &pa, pin_row, &pin_keys, &rep);
	if (rv == CMD_RETURN_NORMAL) {
		cJSON *o = cJSON_AddObjectToObject(ctx->json, "pin");
		if (pin->what & DFQ_PIN_FLOAT)
			cJSON_AddBoolToObject(o, "float", true);
		if (pin->what & DFQ_PIN_WBITS)
			cJSON_AddNumberToObject(o, "wbits", pin->wbits);
		if (pin->what & DFQ_PIN_ABITS)
			cJSON_AddNumberToObject(o, "abits", pin->abits);
	}
	dfq_step_report_free(&rep);
	return rv;
}

static enum cmd_retval cmd_float_exec(struct cmd_ctx *ctx, struct args *a)
{
	(void)a;
	struct dfq_pin pin = {DFQ_PIN_FLOAT, 0, 0};
	return run_pin(ctx, &pin);
}

const struct cmd_entry cmd_float_entry = {
    .name = "float",
    .alias = NULL,
    .usage = "float TARGET...",
    .args = {NULL, 1, -1, ARGS_TARGET, NULL},
    .summary = "mixed precision: keep layers in FP32 (a later 'quantize all' skips them)",
    .exec = cmd_float_exec,
    .flags = CMD_NEEDS_MODEL | CMD_STEP,
    .help = "A step (undo takes it back; save and session save keep it).  A quantized\n"
            "layer goes back to float now; every later quantize, of all layers or of\n"
            "these, leaves the layer float and says so in its summary.  'layers' shows\n"
            "FP32^ in the bits column.  'bits LAYER --wbits N' or 'bits LAYER --clear'\n"
            "replaces the pin.",
};

static enum cmd_retval cmd_bits_exec(struct cmd_ctx *ctx, struct args *a)
{
	bool clear = args_has(a, "clear");
	bool w = args_get(a, "wbits") != NULL, ab = args_get(a, "abits") != NULL;
	if (clear && (w || ab))
		return cmd_fail(ctx, "give --clear or bits (--wbits, --abits), not both");
	if (!clear && !w && !ab)
		return cmd_fail(ctx, "bits: give --wbits N, --abits N (or both), or --clear");
	struct dfq_pin pin = {0, 0, 0};
	if (w) {
		pin.what |= DFQ_PIN_WBITS;
		pin.wbits = (int)args_num(a, "wbits", 0);
	}
	if (ab) {
		pin.what |= DFQ_PIN_ABITS;
		pin.abits = (int)args_num(a, "abits", 0);
	}
	return run_pin(ctx, &pin);
}

/* clang-format off */
static const struct args_flag bits_flags[] = {
	{"wbits", true, NULL, &cli_wbits_num},
	{"abits", true, NULL, &cli_abits_num},
	{"clear", false, NULL, NULL},
	{NULL, false, NULL, NULL},
};
/* clang-format on */

const struct cmd_entry cmd_bits_entry = {
    .name = "bits",
    .alias = NULL,
    .usage = "bits TARGET... [--wbits N] [--abits N] | bits TARGET... --clear",
    .args = {bits_flags, 1, -1, ARGS_TARGET, NULL},
    .summary = "mixed precision: a layer's own bit widths, kept through a later quantize",
    .exec = cmd_bits_exec,
    .flags = CMD_NEEDS_MODEL | CMD_STEP,
    .help = "A step (undo takes it back; save and session save keep it).  Every later\n"
            "quantize, of all layers or of these, gives the layers these bits instead of\n"
            "its own (the rest of its configuration stays) and counts them in its\n"
            "summary.  A quantized layer is quantized again now with the new bits (its\n"
            "scheme, granularity and bias bits as they were); a float layer only keeps\n"
            "the pin until a quantize covers it.  A bit given alone pins that one (e.g.\n"
            "--wbits 4 keeps the activation bits of the quantize).  --clear drops the\n"
            "pins of the layers (float or bits); they stay as they are.  'layers' shows\n"
            "the pinned bits with a ^ (W4A8^).  A 'sweep' leaves pinned bits as they are.",
};
