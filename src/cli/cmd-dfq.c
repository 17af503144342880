/* cmd-dfq.c - the weight-only DFQ steps: fold, relu6-to-relu, clip, equalize, absorb. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dfq/dfq_onnx.h"
#include "model-cmd.h"

/* --- fold --------------------------------------------------------------------- */

static dfq_status fold_fn(struct dfq_model *m, void *arg, struct dfq_step_report *rep,
                          struct dfq_error *err)
{
	return dfq_model_fold(m, rep, err);
}

static bool fold_row(const struct dfq_model *m, const struct dfq_step_row *r, char *buf, size_t len)
{
	char a[24], b[24], c[24];
	snprintf(buf, len, "max |W| %s -> %s (BN scale up to %s)", mc_num(r->before, a, sizeof a),
	         mc_num(r->after, b, sizeof b), mc_num(r->extra, c, sizeof c));
	return false;
}

static enum cmd_retval cmd_fold_exec(struct cmd_ctx *ctx, struct args *a)
{
	static const struct mc_row_keys keys = {"max_w_before", "max_w_after", NULL, NULL,
	                                        "max_scale"};
	struct dfq_step_report rep;
	enum cmd_retval rv = mc_step(ctx, false, fold_fn, NULL, fold_row, &keys, &rep);
	cJSON_AddBoolToObject(ctx->json, "has_stats", rep.has_stats);
	dfq_step_report_free(&rep);
	return rv;
}

const struct cmd_entry cmd_fold_entry = {
    .name = "fold",
    .alias = NULL,
    .usage = "fold",
    .args = {NULL, 0, 0},
    .summary = "fold BatchNorm into the preceding layers (keeping its statistics)",
    .exec = cmd_fold_exec,
    .flags = CMD_NEEDS_MODEL | CMD_STEP,
};

/* --- relu6-to-relu --------------------------------------------------------------- */

static dfq_status relu6_fn(struct dfq_model *m, void *arg, struct dfq_step_report *rep,
                           struct dfq_error *err)
{
	return dfq_model_relu6_to_relu(m, arg, rep, err);
}

static bool relu6_row(const struct dfq_model *m, const struct dfq_step_row *r, char *buf,
                      size_t len)
{
	if (!isnan(r->extra))
		snprintf(buf, len, "(measured max %.4g)", r->extra);
	return true;
}

static enum cmd_retval cmd_relu6_exec(struct cmd_ctx *ctx, struct args *a)
{
	static const struct mc_row_keys keys = {NULL, NULL, NULL, NULL, "measured_max"};
	struct dfq_step_report rep;
	enum cmd_retval rv = mc_step(ctx, false, relu6_fn, ctx->sel, relu6_row, &keys, &rep);
	dfq_step_report_free(&rep);
	return rv;
}

const struct cmd_entry cmd_relu6_entry = {
    .name = "relu6-to-relu",
    .alias = NULL,
    .usage = "relu6-to-relu [TARGET...]",
    .args = {NULL, 0, -1, ARGS_TARGET, NULL},
    .summary = "replace ReLU6 (Clip 0..6) by ReLU, as DFQ's equalization needs",
    .exec = cmd_relu6_exec,
    .flags = CMD_NEEDS_MODEL | CMD_TARGET_ALL | CMD_STEP,
};

/* --- clip ------------------------------------------------------------------------ */

struct clip_arg {
	const bool *sel;
	float lo, hi;
};

static dfq_status clip_fn(struct dfq_model *m, void *arg, struct dfq_step_report *rep,
                          struct dfq_error *err)
{
	struct clip_arg *c = arg;
	return dfq_model_clip(m, c->sel, c->lo, c->hi, rep, err);
}

static bool clip_row(const struct dfq_model *m, const struct dfq_step_row *r, char *buf, size_t len)
{
	char a[24], b[24], c[24], d[24];
	snprintf(buf, len, "W [%s, %s] -> [%s, %s]", mc_num(r->before, a, sizeof a),
	         mc_num(r->before2, b, sizeof b), mc_num(r->after, c, sizeof c),
	         mc_num(r->after2, d, sizeof d));
	return true;
}

static enum cmd_retval cmd_clip_exec(struct cmd_ctx *ctx, struct args *a)
{
	static const struct num_spec real = {.lo = -INFINITY, .hi = INFINITY};
	static const struct mc_row_keys keys = {"wmin_before", "wmin_after", "wmax_before",
	                                        "wmax_after", "clipped"};
	double lo, hi;
	if (!cmd_num(ctx, "LO", a->pos[a->npos - 2], &real, &lo) ||
	    !cmd_num(ctx, "HI", a->pos[a->npos - 1], &real, &hi))
		return CMD_RETURN_ERROR;
	if (!(lo < hi))
		return cmd_fail(ctx, "clip: LO (%g) must be below HI (%g)", lo, hi);
	struct clip_arg c = {ctx->sel, (float)lo, (float)hi};
	struct dfq_step_report rep;
	enum cmd_retval rv = mc_step(ctx, true, clip_fn, &c, clip_row, &keys, &rep);
	mc_json_num(ctx->json, "lo", lo);
	mc_json_num(ctx->json, "hi", hi);
	dfq_step_report_free(&rep);
	return rv;
}

const struct cmd_entry cmd_clip_entry = {
    .name = "clip",
    .alias = NULL,
    .usage = "clip TARGET... LO HI",
    .args = {NULL, 3, -1, ARGS_TARGET, NULL, 2},
    .summary = "clip weights to [LO, HI] (the paper's clip_weight, e.g. clip all -15 15)",
    .exec = cmd_clip_exec,
    .flags = CMD_NEEDS_MODEL | CMD_STEP,
};

/* --- equalize -------------------------------------------------------------------- */

struct eq_arg {
	const bool *sel;
	struct dfq_equalize_opts o;
};

static dfq_status equalize_fn(struct dfq_model *m, void *arg, struct dfq_step_report *rep,
                              struct dfq_error *err)
{
	struct eq_arg *e = arg;
	return dfq_model_equalize(m, e->sel, &e->o, rep, err);
}

static bool equalize_row(const struct dfq_model *m, const struct dfq_step_row *r, char *buf,
                         size_t len)
{
	char a[24], b[24], c[24], d[24], e[24];
	snprintf(buf, len, "spread %s -> %s | %s -> %s (max |log2 s| %s)",
	         mc_num(r->before, a, sizeof a), mc_num(r->after, b, sizeof b),
	         mc_num(r->before2, c, sizeof c), mc_num(r->after2, d, sizeof d),
	         mc_num(r->extra, e, sizeof e));
	return false;
}

static enum cmd_retval cmd_equalize_exec(struct cmd_ctx *ctx, struct args *a)
{
	static const struct mc_row_keys keys = {"spread1_before", "spread1_after", "spread2_before",
	                                        "spread2_after", "max_log2_s"};
	struct eq_arg e = {.sel = ctx->sel};
	dfq_equalize_opts_default(&e.o);
	e.o.range = ctx->s->set.eq_range;
	e.o.chains = ctx->s->set.eq_chains;
	const char *range = args_get(a, "range"), *chains = args_get(a, "chains");
	if (range && strcmp(range, "minmax") != 0 && strcmp(range, "sym") != 0)
		return cmd_fail(ctx, "equalize: --range must be minmax or sym, not '%s'", range);
	if (chains && strcmp(chains, "through") != 0 && strcmp(chains, "stop-linear") != 0)
		return cmd_fail(ctx, "equalize: --chains must be through or stop-linear, not '%s'",
		                chains);
	if (range)
		e.o.range = strcmp(range, "sym") == 0 ? DFQ_QSCHEME_SYM : DFQ_QSCHEME_ASYM;
	if (chains)
		e.o.chains = strcmp(chains, "stop-linear") == 0 ? DFQ_EQ_CHAINS_STOP_LINEAR
		                                                : DFQ_EQ_CHAINS_THROUGH;
	e.o.max_rounds = (int)args_num(a, "rounds", e.o.max_rounds);
	e.o.tol = args_num(a, "tol", e.o.tol);
	struct dfq_step_report rep;
	enum cmd_retval rv = mc_step(ctx, true, equalize_fn, &e, equalize_row, &keys, &rep);
	if (rv == CMD_RETURN_NORMAL) {
		cJSON_AddNumberToObject(ctx->json, "rounds", rep.rounds);
		mc_json_num(ctx->json, "last_delta", rep.last_delta);
		cJSON_AddStringToObject(ctx->json, "range",
		                        e.o.range == DFQ_QSCHEME_SYM ? "sym" : "minmax");
		cJSON_AddStringToObject(ctx->json, "chains",
		                        e.o.chains == DFQ_EQ_CHAINS_STOP_LINEAR ? "stop-linear"
		                                                                : "through");
	}
	dfq_step_report_free(&rep);
	return rv;
}

static const struct num_spec rounds_num = {.whole = true, .lo = 1, .hi = 10000};

static const struct num_spec tol_num = {.lo = 0, .hi = 1};
static const char *const eq_range_flag_words[] = {"minmax", "sym", NULL};
static const char *const eq_chains_flag_words[] = {"through", "stop-linear", NULL};

static const struct args_flag equalize_flags[] = {
    {"range", true, eq_range_flag_words, NULL},
    {"chains", true, eq_chains_flag_words, NULL},
    {"rounds", true, NULL, &rounds_num},
    {"tol", true, NULL, &tol_num},
    {NULL, false, NULL, NULL},
};

const struct cmd_entry cmd_equalize_entry = {
    .name = "equalize",
    .alias = NULL,
    .usage = "equalize [TARGET...] [--range minmax|sym] [--chains through|stop-linear] "
             "[--rounds N] [--tol X]",
    .args = {equalize_flags, 0, -1, ARGS_TARGET, NULL},
    .summary = "cross-layer equalization of consecutive layer pairs (paper sec. 4.1)",
    .exec = cmd_equalize_exec,
    .flags = CMD_NEEDS_MODEL | CMD_TARGET_ALL | CMD_STEP,
    .help = "s_i = sqrt(r1_i r2_i) / r2_i for each channel i between two layers, where r_i is\n"
            "\"the quantization range of channel i\" (paper eq. 11).\n"
            "  --range sym     r_i = 2 max |W_i| (the paper's, for symmetric quantization)\n"
            "  --range minmax  r_i = max W_i - min W_i\n"
            "  --chains stop-linear  a layer with no activation ends the chain\n"
            "  --chains through      it is paired with the layer it feeds (the paper pairs\n"
            "                        layers \"without input or output splits in between\")\n"
            "  --rounds N, --tol X   iterate \"until convergence\": until the mean |dW| of a\n"
            "                        round is below X (2e-7), at most N rounds (20)\n"
            "Defaults: the eq-range (minmax) and eq-chains (stop-linear) settings.",
};

/* --- absorb ---------------------------------------------------------------------- */

struct absorb_arg {
	const bool *sel;
	double n_std;
};

static dfq_status absorb_fn(struct dfq_model *m, void *arg, struct dfq_step_report *rep,
                            struct dfq_error *err)
{
	struct absorb_arg *b = arg;
	return dfq_model_absorb(m, b->sel, b->n_std, rep, err);
}

static bool absorb_row(const struct dfq_model *m, const struct dfq_step_row *r, char *buf,
                       size_t len)
{
	char a[24], b[24], c[24], d[24];
	snprintf(buf, len, "range top %s -> %s, next max |b| %s -> %s",
	         mc_num(r->before, a, sizeof a), mc_num(r->after, b, sizeof b),
	         mc_num(r->before2, c, sizeof c), mc_num(r->after2, d, sizeof d));
	return true;
}

static enum cmd_retval cmd_absorb_exec(struct cmd_ctx *ctx, struct args *a)
{
	static const struct mc_row_keys keys = {"top_before", "top_after", "max_b2_before",
	                                        "max_b2_after", "channels"};
	struct absorb_arg b = {ctx->sel, args_num(a, "n-std", 3.0)};
	struct dfq_step_report rep;
	enum cmd_retval rv = mc_step(ctx, true, absorb_fn, &b, absorb_row, &keys, &rep);
	dfq_step_report_free(&rep);
	return rv;
}

static const struct num_spec absorb_n_std_num = {.lo = 0, .hi = INFINITY, .above_lo = true};

static const struct args_flag absorb_flags[] = {
    {"n-std", true, NULL, &absorb_n_std_num},
    {NULL, false, NULL, NULL},
};

const struct cmd_entry cmd_absorb_entry = {
    .name = "absorb",
    .alias = NULL,
    .usage = "absorb [TARGET...] [--n-std N]",
    .args = {absorb_flags, 0, -1, ARGS_TARGET, NULL},
    .summary = "high-bias absorption into the next layer (c = max(0, beta - 3 gamma))",
    .exec = cmd_absorb_exec,
    .flags = CMD_NEEDS_MODEL | CMD_TARGET_ALL | CMD_STEP,
};
