/* An ordinal-regression head for Polyhead, in plain C against polyhead/polyhead.h alone.
 *
 * Ordered levels (e.g. "short" < "medium" < "long") are predicted the CORAL way (Cao, Mirjalili
 * and Raschka, 2020): one shared weight vector w and K-1 ordered thresholds b_k give K-1
 * binary logits, logit[k] = pooled . w + b_k, "is the level above k?". The predicted level is
 * the number of logits whose sigmoid exceeds one half. Sharing w keeps the K-1 answers
 * consistent, which K separate classes would not.
 *
 * Dimension legend: B sequences, T tokens, H hidden width, K levels (K-1 logits).
 * Config: {"levels": ["low", "mid", "high"], "pooling": "cls" | "mean"}
 * Parameters: ordinal.weight [1, H] (normal 0.02), ordinal.bias [K-1] (zeros, no decay).
 * Loss: binary cross-entropy on the K-1 logits against [level > k], mean over B x (K-1).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "polyhead/polyhead.h"

#define MAX_LEVELS 64

static const ph_host_services *services; /* kept from the entry function */

static ph_status fail(ph_error_sink *errors, ph_status status, const char *message) {
    if (errors != NULL && errors->report != NULL) errors->report(errors, status, message);
    return status;
}

typedef struct {
    int64_t width;                 /* H */
    int64_t levels;                /* K */
    int mean_pooling;              /* 0: first token ([CLS]) */
    char names[MAX_LEVELS][64];    /* level names, in order */
    float *weight, *weight_gradient; /* [H] */
    float *bias, *bias_gradient;     /* [K-1] */
} ordinal_head;

/* ---- lifecycle ---- */

static ph_status ordinal_create(const ph_create_args *args, ph_instance **out_instance, ph_error_sink *errors) {
    char message[160];
    *out_instance = NULL;
    /* "labels" is the task's label set, which polyhead adds to a classification head's config;
     * it names the levels when "levels" is not given. */
    const ph_json *levels = services->json_member(args->config, "levels");
    if (levels == NULL) levels = services->json_member(args->config, "labels");
    const int64_t count = services->json_count(levels);
    if (services->json_type(levels) != PH_JSON_ARRAY || count < 2 || count > MAX_LEVELS) {
        return fail(errors, PH_STATUS_INVALID_ARGUMENT, "config needs \"levels\" (or \"labels\"): 2 to 64 level names, lowest first");
    }
    for (int64_t key = 0; key < services->json_count(args->config); key++) {
        const char *name = services->json_key(args->config, key);
        if (strcmp(name, "levels") != 0 && strcmp(name, "labels") != 0 && strcmp(name, "pooling") != 0) {
            snprintf(message, sizeof message, "unknown config key \"%s\" (known: levels, labels, pooling)", name);
            return fail(errors, PH_STATUS_INVALID_ARGUMENT, message);
        }
    }
    const char *pooling = "cls";
    const ph_json *pooling_value = services->json_member(args->config, "pooling");
    if (pooling_value != NULL && services->json_string(pooling_value, &pooling) != PH_STATUS_OK) {
        return fail(errors, PH_STATUS_INVALID_ARGUMENT, "config key \"pooling\" must be \"cls\" or \"mean\"");
    }
    if (strcmp(pooling, "cls") != 0 && strcmp(pooling, "mean") != 0) {
        snprintf(message, sizeof message, "config key \"pooling\" must be cls or mean (got \"%.40s\")", pooling);
        return fail(errors, PH_STATUS_INVALID_ARGUMENT, message);
    }

    ordinal_head *head = services->allocate(sizeof(ordinal_head));
    if (head == NULL) return fail(errors, PH_STATUS_OUT_OF_MEMORY, "out of memory");
    memset(head, 0, sizeof *head);
    head->width = args->input_width;
    head->levels = count;
    head->mean_pooling = strcmp(pooling, "mean") == 0;
    for (int64_t level = 0; level < count; level++) {
        const char *name = NULL;
        if (services->json_string(services->json_element(levels, level), &name) != PH_STATUS_OK || name[0] == '\0' ||
            strlen(name) >= sizeof head->names[0]) {
            services->release(head);
            return fail(errors, PH_STATUS_INVALID_ARGUMENT, "every level must be a non-empty string under 64 bytes");
        }
        strcpy(head->names[level], name);
    }

    const ph_parameter_spec weight = {sizeof(ph_parameter_spec), PH_PARAMETER_TRAINABLE, "ordinal.weight", 2, PH_INIT_NORMAL,
                                      {1, head->width, 0, 0}, 0.0, 0.02};
    const ph_parameter_spec bias = {sizeof(ph_parameter_spec), PH_PARAMETER_TRAINABLE | PH_PARAMETER_NO_DECAY, "ordinal.bias", 1,
                                    PH_INIT_ZEROS, {count - 1, 0, 0, 0}, 0.0, 0.0};
    ph_status status = args->declare_parameter(args->declarer, &weight, errors);
    if (status == PH_STATUS_OK) status = args->declare_parameter(args->declarer, &bias, errors);
    if (status != PH_STATUS_OK) {
        services->release(head);
        return status;
    }
    *out_instance = (ph_instance *)head;
    return PH_STATUS_OK;
}

static void ordinal_destroy(ph_instance *instance) { services->release(instance); }

static ph_status ordinal_bind(ph_instance *instance, int64_t count, const ph_tensor *const *values,
                              const ph_tensor *const *gradients, ph_error_sink *errors) {
    ordinal_head *head = (ordinal_head *)instance;
    if (count != 2) return fail(errors, PH_STATUS_INVALID_ARGUMENT, "expected the 2 declared parameters");
    head->weight = values[0]->data;
    head->weight_gradient = gradients[0]->data;
    head->bias = values[1]->data;
    head->bias_gradient = gradients[1]->data;
    return PH_STATUS_OK;
}

/* ---- head methods ---- */

static ph_status ordinal_layout(ph_instance *instance, ph_head_layout *layout, ph_error_sink *errors) {
    (void)errors;
    ordinal_head *head = (ordinal_head *)instance;
    layout->granularity = PH_GRANULARITY_SEQUENCE;
    layout->output_width = head->levels - 1;
    layout->target_width = 1;
    layout->target_dtype = PH_DTYPE_I64;
    return PH_STATUS_OK;
}

/* A label is a level name or a level index. */
static ph_status ordinal_encode_target(ph_instance *instance, const ph_json *label, const ph_tensor *word_ids,
                                       ph_tensor *target, ph_error_sink *errors) {
    (void)word_ids;
    ordinal_head *head = (ordinal_head *)instance;
    int64_t *out = target->data;
    const char *name = NULL;
    double index = -1;
    if (services->json_string(label, &name) == PH_STATUS_OK) {
        for (int64_t level = 0; level < head->levels; level++) {
            if (strcmp(head->names[level], name) == 0) {
                out[0] = level;
                return PH_STATUS_OK;
            }
        }
        char message[256];
        snprintf(message, sizeof message, "unknown level \"%.60s\" (levels run from \"%.63s\" to \"%.63s\")", name, head->names[0],
                 head->names[head->levels - 1]);
        return fail(errors, PH_STATUS_INVALID_ARGUMENT, message);
    }
    if (services->json_number(label, &index) == PH_STATUS_OK && index == floor(index) && index >= 0 && index < (double)head->levels) {
        out[0] = (int64_t)index;
        return PH_STATUS_OK;
    }
    return fail(errors, PH_STATUS_INVALID_ARGUMENT, "a label must be a level name or a level index");
}

/* pooled [B, H]: the first token of each sequence, or the mean of its tokens. */
static void ordinal_pool(const ordinal_head *head, const ph_head_input *input, float *pooled) {
    const int64_t sequences = input->sequence_offsets->shape[0] - 1, width = head->width;
    const int64_t *offsets = input->sequence_offsets->data;
    const float *features = input->features->data;
    for (int64_t b = 0; b < sequences; b++) {
        const int64_t start = offsets[b], end = head->mean_pooling ? offsets[b + 1] : start + 1;
        for (int64_t h = 0; h < width; h++) {
            float sum = 0;
            for (int64_t t = start; t < end; t++) sum += features[t * width + h];
            pooled[b * width + h] = sum / (float)(end - start);
        }
    }
}

/* The saved state is the pooled features; backward needs nothing else. */
static ph_status ordinal_forward(ph_instance *instance, const ph_head_input *input, ph_tensor *outputs, ph_saved **out_saved,
                                 ph_error_sink *errors) {
    ordinal_head *head = (ordinal_head *)instance;
    if (!ph_tensor_is(input->features, PH_DTYPE_F32, 2) || input->features->shape[1] != head->width) {
        return fail(errors, PH_STATUS_INVALID_ARGUMENT, "features must be F32 [T, H] with the encoder's hidden width");
    }
    const int64_t sequences = input->sequence_offsets->shape[0] - 1, width = head->width, thresholds = head->levels - 1;
    float *pooled = services->allocate((int64_t)sizeof(float) * sequences * width);
    if (pooled == NULL) return fail(errors, PH_STATUS_OUT_OF_MEMORY, "out of memory");
    ordinal_pool(head, input, pooled);
    float *logits = outputs->data;
    for (int64_t b = 0; b < sequences; b++) {
        float score = 0;
        for (int64_t h = 0; h < width; h++) score += pooled[b * width + h] * head->weight[h];
        for (int64_t k = 0; k < thresholds; k++) logits[b * thresholds + k] = score + head->bias[k];
    }
    if (out_saved == NULL) {
        services->release(pooled);
    } else {
        *out_saved = (ph_saved *)pooled;
    }
    return PH_STATUS_OK;
}

static ph_status ordinal_loss(ph_instance *instance, const ph_tensor *outputs, const ph_tensor *targets, ph_tensor *d_outputs,
                              double *out_loss, ph_error_sink *errors) {
    ordinal_head *head = (ordinal_head *)instance;
    const int64_t rows = outputs->shape[0], thresholds = head->levels - 1;
    const float *logits = outputs->data;
    const int64_t *levels = targets->data;
    float *gradient = d_outputs->data;
    const double count = (double)(rows * thresholds);
    double total = 0;
    for (int64_t b = 0; b < rows; b++) {
        if (levels[b] < 0 || levels[b] >= head->levels) {
            return fail(errors, PH_STATUS_INVALID_ARGUMENT, "a target level is outside the configured levels");
        }
        for (int64_t k = 0; k < thresholds; k++) {
            const double z = logits[b * thresholds + k], above = levels[b] > k ? 1.0 : 0.0;
            /* softplus(z) - above * z, without overflow */
            total += fmax(z, 0.0) + log1p(exp(-fabs(z))) - above * z;
            gradient[b * thresholds + k] = (float)((1.0 / (1.0 + exp(-z)) - above) / count);
        }
    }
    *out_loss = total / count;
    return PH_STATUS_OK;
}

static ph_status ordinal_backward(ph_instance *instance, ph_saved *saved, const ph_head_input *input, const ph_tensor *d_outputs,
                                  ph_tensor *d_features, ph_error_sink *errors) {
    ordinal_head *head = (ordinal_head *)instance;
    if (saved == NULL) return fail(errors, PH_STATUS_INVALID_ARGUMENT, "backward needs the state of a training forward pass");
    const float *pooled = (const float *)saved, *d_logits = d_outputs->data;
    const int64_t sequences = input->sequence_offsets->shape[0] - 1, width = head->width, thresholds = head->levels - 1;
    const int64_t *offsets = input->sequence_offsets->data;
    float *d_x = d_features->data;
    memset(d_x, 0, sizeof(float) * (size_t)(input->features->shape[0] * width));
    for (int64_t b = 0; b < sequences; b++) {
        float d_score = 0; /* d(loss)/d(pooled . w): every logit of the row shares it */
        for (int64_t k = 0; k < thresholds; k++) {
            d_score += d_logits[b * thresholds + k];
            head->bias_gradient[k] += d_logits[b * thresholds + k];
        }
        const int64_t start = offsets[b], end = head->mean_pooling ? offsets[b + 1] : start + 1;
        for (int64_t h = 0; h < width; h++) {
            head->weight_gradient[h] += d_score * pooled[b * width + h];
            const float d_pooled = d_score * head->weight[h] / (float)(end - start);
            for (int64_t t = start; t < end; t++) d_x[t * width + h] = d_pooled;
        }
    }
    return PH_STATUS_OK;
}

static void ordinal_release_saved(ph_instance *instance, ph_saved *saved) {
    (void)instance;
    services->release(saved);
}

static int64_t rank_of(const float *logits, int64_t thresholds) {
    int64_t rank = 0;
    for (int64_t k = 0; k < thresholds; k++) rank += logits[k] > 0; /* sigmoid > 1/2 */
    return rank;
}

static ph_status ordinal_decode(ph_instance *instance, const ph_tensor *outputs, const ph_tensor *word_ids, ph_text_sink *sink,
                                ph_error_sink *errors) {
    (void)word_ids;
    ordinal_head *head = (ordinal_head *)instance;
    if (outputs->shape[0] != 1) return fail(errors, PH_STATUS_INVALID_ARGUMENT, "decode takes one example's row");
    const int64_t rank = rank_of(outputs->data, head->levels - 1);
    char text[128];
    const int length = snprintf(text, sizeof text, "{\"label\":\"%s\",\"rank\":%lld}", head->names[rank], (long long)rank);
    sink->append(sink, text, length);
    return PH_STATUS_OK;
}

/* ---- extension functions ---- */

/* rank(logits): the level index a row of K-1 logits predicts. Signature "l(t)". */
static int64_t extension_rank(const ph_tensor *logits) {
    if (logits->dtype != PH_DTYPE_F32) return -1;
    return rank_of(logits->data, ph_tensor_count(logits));
}

/* Mean absolute difference between predicted and target levels. Signature "d(tte)". */
static double extension_mean_absolute_rank_error(const ph_tensor *outputs, const ph_tensor *targets, ph_error_sink *errors) {
    if (!ph_tensor_is(outputs, PH_DTYPE_F32, 2) || ph_tensor_count(targets) != outputs->shape[0] || outputs->shape[0] == 0) {
        fail(errors, PH_STATUS_INVALID_ARGUMENT, "needs outputs F32 [N, K-1] and N target levels");
        return 0;
    }
    const int64_t rows = outputs->shape[0], thresholds = outputs->shape[1];
    double total = 0;
    for (int64_t b = 0; b < rows; b++) {
        const double target = targets->dtype == PH_DTYPE_I64 ? (double)((const int64_t *)targets->data)[b]
                                                             : (double)((const float *)targets->data)[b];
        total += fabs((double)rank_of((const float *)outputs->data + b * thresholds, thresholds) - target);
    }
    return total / (double)rows;
}

/* ---- the tables ---- */

static const ph_head_methods ordinal_methods = {
    sizeof(ph_head_methods), ordinal_layout, ordinal_encode_target, NULL, ordinal_forward, ordinal_loss,
    ordinal_backward, ordinal_release_saved, ordinal_decode,
};

static const ph_component_descriptor ordinal_descriptor = {
    sizeof(ph_component_descriptor), PH_COMPONENT_TASK_HEAD, "example.ordinal", "1.0.0", "Ordinal regression head (C)",
    "Ordered levels with shared weights and K-1 thresholds (CORAL), written in plain C",
    "{\"levels\": [\"short\", \"medium\", \"long\"], \"pooling\": \"mean\"}",
};

static const ph_component ordinal_component = {
    sizeof(ph_component), &ordinal_descriptor, ordinal_create, ordinal_destroy, ordinal_bind, &ordinal_methods, NULL, NULL,
};

static const ph_extension_function rank_function = {
    sizeof(ph_extension_function), 0, "rank", "l(t)", "the level a row of K-1 logits predicts: rank(logits)",
    (ph_generic_function)extension_rank,
};
static const ph_extension_function error_function = {
    sizeof(ph_extension_function), 0, "mean_absolute_rank_error", "d(tte)",
    "mean |predicted level - target level| (outputs [N, K-1], targets [N])",
    (ph_generic_function)extension_mean_absolute_rank_error,
};

static const ph_component *const components[] = {&ordinal_component};
static const ph_extension_function *const extensions[] = {&rank_function, &error_function};

static const ph_plugin plugin = {
    sizeof(ph_plugin), PH_ABI_MAJOR, PH_ABI_MINOR, "example.ordinal-plugin", "1.0.0", "Ordinal head in C",
    NULL, /* no Swift runtime */
    1, components, 2, extensions,
};

PH_EXPORT ph_status polyhead_plugin_entry(const ph_host *host, const ph_plugin **out_plugin, ph_error_sink *errors) {
    if (host->abi_major != PH_ABI_MAJOR) {
        char message[128];
        snprintf(message, sizeof message, "this head implements ABI %d.%d but the host offers %d.%d", PH_ABI_MAJOR, PH_ABI_MINOR,
                 host->abi_major, host->abi_minor);
        return fail(errors, PH_STATUS_UNSUPPORTED, message);
    }
    services = host->services;
    *out_plugin = &plugin;
    return PH_STATUS_OK;
}
