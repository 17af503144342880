/* model_names.c - names of the model's enums (activations, steps, point kinds, range
 * sources) and the defaults of its option structs. */
#include <stdio.h>
#include <string.h>

#include "model_internal.h"
/* --- names ---------------------------------------------------------------- */

bool model_module_path(const char *node_name, char *buf, size_t len)
{
	/* PyTorch (1.13+) names a node by its module scopes, each scope the
	 * module's name inside its parent's ("/features/features.1/conv/conv.0/Conv"):
	 * a scope extending the previous one ("features" -> "features.1") replaces
	 * it, any other is appended, giving the module's qualified name. */
	size_t used = 0, last = 0, last_len = 0;
	int scopes = 0;
	const char *p = node_name;
	if (len == 0 || !p || *p != '/')
		return false;
	buf[0] = '\0';
	for (;;) {
		const char *s = p + 1, *e = strchr(s, '/');
		if (!e)
			break; /* the last part is the op, not a scope */
		size_t n = (size_t)(e - s);
		if (n == 0)
			return false;
		bool extends = scopes && n > last_len + 1 && memcmp(s, buf + last, last_len) == 0 &&
		               s[last_len] == '.';
		if (!extends) {
			last = used + (used ? 1 : 0);
			if (used && used + 1 < len)
				buf[used++] = '.';
		}
		if (last + n + 1 > len)
			return false;
		memcpy(buf + last, s, n);
		used = last + n;
		buf[used] = '\0';
		last_len = n;
		scopes++;
		p = e;
	}
	return scopes > 0;
}

const char *dfq_act_name(dfq_act a)
{
	switch (a) {
	case DFQ_ACT_NONE:
		return "none";
	case DFQ_ACT_RELU:
		return "relu";
	case DFQ_ACT_RELU6:
		return "relu6";
	}
	return "?";
}

static const char *const step_names[DFQ_STEP_COUNT] = {
    "fold", "relu6", "clip", "equalize", "absorb", "quantize", "biascorr",
};

const char *dfq_step_name(unsigned step)
{
	for (int i = 0; i < DFQ_STEP_COUNT; i++)
		if (step == 1u << i)
			return step_names[i];
	return "?";
}

char *dfq_steps_str(unsigned mask, char *buf, size_t len)
{
	size_t used = 0;
	if (len == 0)
		return buf;
	buf[0] = '\0';
	for (int i = 0; i < DFQ_STEP_COUNT; i++) {
		if (!(mask & (1u << i)))
			continue;
		int k = snprintf(buf + used, len - used, "%s%s", used ? "," : "", step_names[i]);
		if (k < 0 || (size_t)k >= len - used)
			break;
		used += (size_t)k;
	}
	if (!buf[0])
		snprintf(buf, len, "-");
	return buf;
}

const char *dfq_apoint_kind_name(dfq_apoint_kind k)
{
	switch (k) {
	case DFQ_APOINT_INPUT:
		return "input";
	case DFQ_APOINT_LAYER:
		return "layer";
	case DFQ_APOINT_ADD:
		return "add";
	case DFQ_APOINT_CONCAT:
		return "concat";
	case DFQ_APOINT_POOL:
		return "pool";
	}
	return "?";
}

const char *dfq_range_src_name(dfq_range_src s)
{
	switch (s) {
	case DFQ_RANGE_BN:
		return "bn";
	case DFQ_RANGE_MINMAX:
		return "minmax";
	case DFQ_RANGE_GLOBAL:
		return "global";
	case DFQ_RANGE_PERCENTILE:
		return "percentile";
	case DFQ_RANGE_GIVEN:
		return "given";
	case DFQ_RANGE_NONE:
		return "none";
	}
	return "?";
}

dfq_status dfq_range_src_parse(const char *s, dfq_range_src *out, struct dfq_error *err)
{
	static const dfq_range_src choices[] = {DFQ_RANGE_BN, DFQ_RANGE_MINMAX, DFQ_RANGE_GLOBAL,
	                                        DFQ_RANGE_PERCENTILE};
	for (size_t i = 0; i < sizeof choices / sizeof choices[0]; i++) {
		if (strcmp(s, dfq_range_src_name(choices[i])) == 0) {
			*out = choices[i];
			return DFQ_OK;
		}
	}
	return dfq_error_set(err, DFQ_ERR_ARG,
	                     "unknown activation range source '%s' (expected bn, minmax, global "
	                     "or percentile)",
	                     s);
}

void dfq_qconfig_default(struct dfq_qconfig *q)
{
	q->wbits = 8;
	q->abits = 8;
	q->bbits = 0;
	q->scheme = DFQ_QSCHEME_ASYM;
	q->per_channel = false;
}

void dfq_measure_opts_default(struct dfq_measure_opts *o)
{
	o->momentum = 0.1;
	o->percentile = 99.99;
}
