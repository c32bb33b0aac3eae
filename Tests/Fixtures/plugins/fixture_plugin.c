/* A small plugin in plain C for the host's tests: one component of each kind and one
 * extension function per signature letter. Compile-time switches build the broken
 * variants the host must refuse (see PluginHostTests/RefusalTests.swift):
 *   -DANSWER_MAJOR=2 / -DANSWER_MINOR=7       answer another ABI version
 *   -DPLUGIN_SIZE=16 / -DHEAD_METHODS_SIZE=8  size fields too small
 *   -DPLUGIN_ID=\"x\" -DHEAD_ID=\"y\"           ids (duplicate-id tests build two copies)
 *   -DTOOLCHAIN=\"swift 0\"                     claim a Swift toolchain the host lacks
 *   -DBAD_SIGNATURE                           publish an extension with signature "q(ii)"
 *   -DENTRY_FAILS                             the entry function refuses the host
 * Build: cc -shared -fPIC -std=c11 -I Sources/CPolyhead/include fixture_plugin.c
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "polyhead/polyhead.h"

#ifndef ANSWER_MAJOR
#define ANSWER_MAJOR PH_ABI_MAJOR
#endif
#ifndef ANSWER_MINOR
#define ANSWER_MINOR PH_ABI_MINOR
#endif
#ifndef PLUGIN_SIZE
#define PLUGIN_SIZE sizeof(ph_plugin)
#endif
#ifndef HEAD_METHODS_SIZE
#define HEAD_METHODS_SIZE sizeof(ph_head_methods)
#endif
#ifndef PLUGIN_ID
#define PLUGIN_ID "fixture.plugin"
#endif
#ifndef HEAD_ID
#define HEAD_ID "fixture.head"
#endif
#ifndef TOOLCHAIN
#define TOOLCHAIN NULL
#endif

static const ph_host_services *services;

static ph_status fail(ph_error_sink *errors, ph_status status, const char *message) {
    if (errors != NULL && errors->report != NULL) errors->report(errors, status, message);
    return status;
}

/* ---- Head: outputs[b] = mean over sequence b of features . W^T + bias; MSE loss. ---- */

typedef struct {
    int64_t width;   /* H */
    int64_t outputs; /* C */
    int fail_forward;
    int fail_silently;
    float *weight, *weight_gradient; /* [C, H] */
    float *bias, *bias_gradient;     /* [C] */
} fixture_head;

typedef struct { float *pooled; } fixture_saved; /* [B, H] */

static ph_status head_create(const ph_create_args *args, ph_instance **out, ph_error_sink *errors) {
    *out = NULL;
    const ph_json *config = args->config;
    int32_t flag = 0;
    if (services->json_bool(services->json_member(config, "fail_create"), &flag) == PH_STATUS_OK && flag) {
        return fail(errors, PH_STATUS_INVALID_ARGUMENT, "fail_create is set, so create refuses (remove it from the config)");
    }
    double outputs = 1;
    services->json_number(services->json_member(config, "outputs"), &outputs);
    fixture_head *head = calloc(1, sizeof(fixture_head));
    if (head == NULL) return fail(errors, PH_STATUS_OUT_OF_MEMORY, "out of memory");
    head->width = args->input_width;
    head->outputs = (int64_t)outputs;
    services->json_bool(services->json_member(config, "fail_forward"), &head->fail_forward);
    services->json_bool(services->json_member(config, "fail_silently"), &head->fail_silently);
    ph_parameter_spec spec = {sizeof(ph_parameter_spec), PH_PARAMETER_TRAINABLE, "probe.weight", 2, PH_INIT_FAN_IN_UNIFORM,
                              {head->outputs, head->width, 0, 0}, 0, 0};
    ph_status status = args->declare_parameter(args->declarer, &spec, errors);
    if (status == PH_STATUS_OK) {
        ph_parameter_spec bias = {sizeof(ph_parameter_spec), PH_PARAMETER_TRAINABLE | PH_PARAMETER_NO_DECAY, "probe.bias", 1,
                                  PH_INIT_ZEROS, {head->outputs, 0, 0, 0}, 0, 0};
        status = args->declare_parameter(args->declarer, &bias, errors);
    }
    if (status != PH_STATUS_OK) {
        free(head);
        return status;
    }
    *out = (ph_instance *)head;
    return PH_STATUS_OK;
}

static void head_destroy(ph_instance *instance) { free(instance); }

static ph_status head_bind(ph_instance *instance, int64_t count, const ph_tensor *const *values,
                           const ph_tensor *const *gradients, ph_error_sink *errors) {
    fixture_head *head = (fixture_head *)instance;
    if (count != 2) return fail(errors, PH_STATUS_INVALID_ARGUMENT, "expected 2 parameters");
    head->weight = values[0]->data;
    head->weight_gradient = gradients[0]->data;
    head->bias = values[1]->data;
    head->bias_gradient = gradients[1]->data;
    return PH_STATUS_OK;
}

static ph_status head_layout(ph_instance *instance, ph_head_layout *layout, ph_error_sink *errors) {
    (void)errors;
    fixture_head *head = (fixture_head *)instance;
    layout->granularity = PH_GRANULARITY_SEQUENCE;
    layout->output_width = head->outputs;
    layout->target_width = head->outputs;
    layout->target_dtype = PH_DTYPE_F32;
    return PH_STATUS_OK;
}

static ph_status head_encode(ph_instance *instance, const ph_json *label, const ph_tensor *word_ids, ph_tensor *target,
                             ph_error_sink *errors) {
    (void)word_ids;
    fixture_head *head = (fixture_head *)instance;
    float *out = target->data;
    for (int64_t column = 0; column < head->outputs; column++) {
        double value = 0;
        const ph_json *element = head->outputs == 1 && services->json_type(label) == PH_JSON_NUMBER ? label : services->json_element(label, column);
        if (services->json_number(element, &value) != PH_STATUS_OK) return fail(errors, PH_STATUS_INVALID_ARGUMENT, "a target must be numbers");
        out[column] = (float)value;
    }
    return PH_STATUS_OK;
}

static ph_status head_forward(ph_instance *instance, const ph_head_input *input, ph_tensor *outputs, ph_saved **saved,
                              ph_error_sink *errors) {
    fixture_head *head = (fixture_head *)instance;
    if (head->fail_forward) {
        if (head->fail_silently) return PH_STATUS_NOT_FINITE;
        return fail(errors, PH_STATUS_NOT_FINITE, "fail_forward is set, so forward reports an error");
    }
    const int64_t sequences = input->sequence_offsets->shape[0] - 1, width = head->width;
    const int64_t *offsets = input->sequence_offsets->data;
    const float *features = input->features->data;
    float *pooled = calloc((size_t)(sequences * width), sizeof(float));
    if (pooled == NULL) return fail(errors, PH_STATUS_OUT_OF_MEMORY, "out of memory");
    for (int64_t b = 0; b < sequences; b++) {
        for (int64_t t = offsets[b]; t < offsets[b + 1]; t++)
            for (int64_t h = 0; h < width; h++) pooled[b * width + h] += features[t * width + h] / (float)(offsets[b + 1] - offsets[b]);
    }
    float *out = outputs->data;
    services->sgemm(PH_NO_TRANSPOSE, PH_TRANSPOSE, sequences, head->outputs, width, 1.0f, pooled, width, head->weight, width, 0.0f,
                    out, head->outputs);
    for (int64_t b = 0; b < sequences; b++)
        for (int64_t c = 0; c < head->outputs; c++) out[b * head->outputs + c] += head->bias[c];
    if (saved == NULL) {
        free(pooled);
        return PH_STATUS_OK;
    }
    fixture_saved *state = malloc(sizeof(fixture_saved));
    if (state == NULL) {
        free(pooled);
        return fail(errors, PH_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    state->pooled = pooled;
    *saved = (ph_saved *)state;
    return PH_STATUS_OK;
}

static ph_status head_loss(ph_instance *instance, const ph_tensor *outputs, const ph_tensor *targets, ph_tensor *gradient,
                           double *loss, ph_error_sink *errors) {
    (void)instance;
    (void)errors;
    const int64_t count = ph_tensor_count(outputs);
    const float *out = outputs->data, *target = targets->data;
    float *d = gradient->data;
    double total = 0;
    for (int64_t i = 0; i < count; i++) {
        double residual = (double)out[i] - (double)target[i];
        total += residual * residual;
        d[i] = (float)(2 * residual / (double)count);
    }
    *loss = total / (double)count;
    return PH_STATUS_OK;
}

static ph_status head_backward(ph_instance *instance, ph_saved *saved, const ph_head_input *input, const ph_tensor *d_outputs,
                               ph_tensor *d_features, ph_error_sink *errors) {
    fixture_head *head = (fixture_head *)instance;
    if (saved == NULL) return fail(errors, PH_STATUS_INVALID_ARGUMENT, "backward needs a training forward's state");
    const float *pooled = ((fixture_saved *)saved)->pooled, *dy = d_outputs->data;
    const int64_t sequences = input->sequence_offsets->shape[0] - 1, width = head->width, classes = head->outputs;
    const int64_t *offsets = input->sequence_offsets->data;
    float *dx = d_features->data;
    for (int64_t b = 0; b < sequences; b++) {
        for (int64_t c = 0; c < classes; c++) {
            head->bias_gradient[c] += dy[b * classes + c];
            for (int64_t h = 0; h < width; h++) head->weight_gradient[c * width + h] += dy[b * classes + c] * pooled[b * width + h];
        }
        const float length = (float)(offsets[b + 1] - offsets[b]);
        for (int64_t t = offsets[b]; t < offsets[b + 1]; t++) {
            for (int64_t h = 0; h < width; h++) {
                float sum = 0;
                for (int64_t c = 0; c < classes; c++) sum += dy[b * classes + c] * head->weight[c * width + h];
                dx[t * width + h] = sum / length;
            }
        }
    }
    return PH_STATUS_OK;
}

static void head_release(ph_instance *instance, ph_saved *saved) {
    (void)instance;
    if (saved == NULL) return;
    free(((fixture_saved *)saved)->pooled);
    free(saved);
}

static ph_status head_decode(ph_instance *instance, const ph_tensor *outputs, const ph_tensor *word_ids, ph_text_sink *sink,
                             ph_error_sink *errors) {
    (void)instance;
    (void)word_ids;
    (void)errors;
    char text[64];
    int length = snprintf(text, sizeof text, "{\"value\":%.6g}", (double)((const float *)outputs->data)[0]);
    sink->append(sink, text, length);
    return PH_STATUS_OK;
}

static const ph_head_methods head_methods = {
    HEAD_METHODS_SIZE, head_layout, head_encode, NULL, head_forward, head_loss, head_backward, head_release, head_decode,
};

static const ph_component_descriptor head_descriptor = {
    sizeof(ph_component_descriptor), PH_COMPONENT_TASK_HEAD, HEAD_ID, "1.2.3", "Fixture head",
    "Mean-pooled linear probe with MSE, for tests", "{\"outputs\": 2}",
};

static const ph_component head_component = {
    sizeof(ph_component), &head_descriptor, head_create, head_destroy, head_bind, &head_methods, NULL, NULL,
};

/* ---- Null head: the least a head can do (zero outputs and gradients), so a benchmark
 * measures the boundary itself: views, checks, the indirect calls, the error sink. ---- */

static int null_instance; /* any non-NULL address will do */

static ph_status null_create(const ph_create_args *args, ph_instance **out, ph_error_sink *errors) {
    (void)args;
    (void)errors;
    *out = (ph_instance *)&null_instance;
    return PH_STATUS_OK;
}
static void null_destroy(ph_instance *instance) { (void)instance; }
static ph_status null_bind(ph_instance *instance, int64_t count, const ph_tensor *const *values, const ph_tensor *const *gradients,
                           ph_error_sink *errors) {
    (void)instance, (void)count, (void)values, (void)gradients, (void)errors;
    return PH_STATUS_OK;
}
static ph_status null_layout(ph_instance *instance, ph_head_layout *layout, ph_error_sink *errors) {
    (void)instance, (void)errors;
    layout->granularity = PH_GRANULARITY_SEQUENCE;
    layout->output_width = 4;
    layout->target_width = 1;
    layout->target_dtype = PH_DTYPE_I64;
    return PH_STATUS_OK;
}
static ph_status null_forward(ph_instance *instance, const ph_head_input *input, ph_tensor *outputs, ph_saved **saved,
                              ph_error_sink *errors) {
    (void)instance, (void)input, (void)errors;
    memset(outputs->data, 0, sizeof(float) * (size_t)ph_tensor_count(outputs));
    if (saved != NULL) *saved = NULL;
    return PH_STATUS_OK;
}
static ph_status null_loss(ph_instance *instance, const ph_tensor *outputs, const ph_tensor *targets, ph_tensor *gradient,
                           double *loss, ph_error_sink *errors) {
    (void)instance, (void)outputs, (void)targets, (void)errors;
    memset(gradient->data, 0, sizeof(float) * (size_t)ph_tensor_count(gradient));
    *loss = 0;
    return PH_STATUS_OK;
}
static ph_status null_backward(ph_instance *instance, ph_saved *saved, const ph_head_input *input, const ph_tensor *d_outputs,
                               ph_tensor *d_features, ph_error_sink *errors) {
    (void)instance, (void)saved, (void)input, (void)d_outputs, (void)d_features, (void)errors;
    return PH_STATUS_OK; /* leaves d_features as the host passed it (zeros in the benchmark) */
}
static ph_status null_encode(ph_instance *instance, const ph_json *label, const ph_tensor *word_ids, ph_tensor *target,
                             ph_error_sink *errors) {
    (void)instance, (void)label, (void)word_ids, (void)errors;
    ((int64_t *)target->data)[0] = 0;
    return PH_STATUS_OK;
}
static ph_status null_decode(ph_instance *instance, const ph_tensor *outputs, const ph_tensor *word_ids, ph_text_sink *sink,
                             ph_error_sink *errors) {
    (void)instance, (void)outputs, (void)word_ids, (void)errors;
    sink->append(sink, "{}", 2);
    return PH_STATUS_OK;
}
static void null_release(ph_instance *instance, ph_saved *saved) { (void)instance, (void)saved; }

static const ph_head_methods null_methods = {
    sizeof(ph_head_methods), null_layout, null_encode, NULL, null_forward, null_loss, null_backward, null_release, null_decode,
};
static const ph_component_descriptor null_descriptor = {
    sizeof(ph_component_descriptor), PH_COMPONENT_TASK_HEAD, "fixture.null", "1.0.0", "Null head",
    "Does nothing, to measure the boundary", "{}",
};
static const ph_component null_component = {
    sizeof(ph_component), &null_descriptor, null_create, null_destroy, null_bind, &null_methods, NULL, NULL,
};

/* ---- Router: outputs = features * gate[task]. ---- */

typedef struct {
    int64_t width;
    int32_t tasks;
    float *gate, *gate_gradient; /* [tasks] */
} fixture_router;

typedef struct { int32_t task; } router_saved;

static ph_status router_create(const ph_create_args *args, ph_instance **out, ph_error_sink *errors) {
    fixture_router *router = calloc(1, sizeof(fixture_router));
    if (router == NULL) return fail(errors, PH_STATUS_OUT_OF_MEMORY, "out of memory");
    router->width = args->input_width;
    router->tasks = args->task_count;
    ph_parameter_spec spec = {sizeof(ph_parameter_spec), PH_PARAMETER_TRAINABLE, "gate", 1, PH_INIT_CONSTANT,
                              {args->task_count, 0, 0, 0}, 1.5, 0};
    ph_status status = args->declare_parameter(args->declarer, &spec, errors);
    if (status != PH_STATUS_OK) {
        free(router);
        return status;
    }
    *out = (ph_instance *)router;
    return PH_STATUS_OK;
}

static ph_status router_bind(ph_instance *instance, int64_t count, const ph_tensor *const *values,
                             const ph_tensor *const *gradients, ph_error_sink *errors) {
    (void)count;
    (void)errors;
    fixture_router *router = (fixture_router *)instance;
    router->gate = values[0]->data;
    router->gate_gradient = gradients[0]->data;
    return PH_STATUS_OK;
}

static ph_status router_width(ph_instance *instance, int64_t *width, ph_error_sink *errors) {
    (void)errors;
    *width = ((fixture_router *)instance)->width;
    return PH_STATUS_OK;
}

static ph_status router_forward(ph_instance *instance, int32_t task, const ph_head_input *input, ph_tensor *outputs,
                                ph_saved **saved, ph_error_sink *errors) {
    fixture_router *router = (fixture_router *)instance;
    const int64_t count = ph_tensor_count(input->features);
    const float *x = input->features->data;
    float *y = outputs->data;
    for (int64_t i = 0; i < count; i++) y[i] = x[i] * router->gate[task];
    if (saved != NULL) {
        router_saved *state = malloc(sizeof(router_saved));
        if (state == NULL) return fail(errors, PH_STATUS_OUT_OF_MEMORY, "out of memory");
        state->task = task;
        *saved = (ph_saved *)state;
    }
    return PH_STATUS_OK;
}

static ph_status router_backward(ph_instance *instance, ph_saved *saved, const ph_head_input *input, const ph_tensor *d_outputs,
                                 ph_tensor *d_features, ph_error_sink *errors) {
    (void)errors;
    fixture_router *router = (fixture_router *)instance;
    const int32_t task = ((router_saved *)saved)->task;
    const int64_t count = ph_tensor_count(input->features);
    const float *x = input->features->data, *dy = d_outputs->data;
    float *dx = d_features->data;
    for (int64_t i = 0; i < count; i++) {
        dx[i] = dy[i] * router->gate[task];
        router->gate_gradient[task] += dy[i] * x[i];
    }
    return PH_STATUS_OK;
}

static void release_block(ph_instance *instance, ph_saved *saved) {
    (void)instance;
    free(saved);
}

static const ph_router_methods router_methods = {
    sizeof(ph_router_methods), router_width, router_forward, router_backward, release_block,
};
static const ph_component_descriptor router_descriptor = {
    sizeof(ph_component_descriptor), PH_COMPONENT_ROUTER, "fixture.router", "1.0.0", "Fixture router",
    "Scales features by a per-task gate", "{}",
};
static const ph_component router_component = {
    sizeof(ph_component), &router_descriptor, router_create, head_destroy, router_bind, NULL, &router_methods, NULL,
};

/* ---- Adapter: y[:, i] += scale * x[:, i] for i < min(in, out) on sites whose name
 * contains config "match". ---- */

typedef struct {
    int64_t site_count;
    const ph_linear_site *const *sites;
    char match[64];
    float *scale, *scale_gradient; /* [1] */
} fixture_adapter;

static ph_status adapter_create(const ph_create_args *args, ph_instance **out, ph_error_sink *errors) {
    fixture_adapter *adapter = calloc(1, sizeof(fixture_adapter));
    if (adapter == NULL) return fail(errors, PH_STATUS_OUT_OF_MEMORY, "out of memory");
    adapter->site_count = args->site_count;
    adapter->sites = args->sites;
    const char *match = "query";
    services->json_string(services->json_member(args->config, "match"), &match);
    snprintf(adapter->match, sizeof adapter->match, "%s", match);
    ph_parameter_spec spec = {sizeof(ph_parameter_spec), PH_PARAMETER_TRAINABLE, "scale", 1, PH_INIT_CONSTANT, {1, 0, 0, 0}, 0.5, 0};
    ph_status status = args->declare_parameter(args->declarer, &spec, errors);
    if (status != PH_STATUS_OK) {
        free(adapter);
        return status;
    }
    *out = (ph_instance *)adapter;
    return PH_STATUS_OK;
}

static ph_status adapter_bind(ph_instance *instance, int64_t count, const ph_tensor *const *values,
                              const ph_tensor *const *gradients, ph_error_sink *errors) {
    (void)count;
    (void)errors;
    fixture_adapter *adapter = (fixture_adapter *)instance;
    adapter->scale = values[0]->data;
    adapter->scale_gradient = gradients[0]->data;
    return PH_STATUS_OK;
}

static int32_t adapter_hooks(ph_instance *instance, int64_t site) {
    fixture_adapter *adapter = (fixture_adapter *)instance;
    return site >= 0 && site < adapter->site_count && strstr(adapter->sites[site]->name, adapter->match) != NULL;
}

static ph_status adapter_forward(ph_instance *instance, int64_t site, int32_t training, const ph_tensor *x, ph_tensor *y,
                                 ph_saved **saved, ph_error_sink *errors) {
    (void)training;
    (void)errors;
    fixture_adapter *adapter = (fixture_adapter *)instance;
    const int64_t rows = x->shape[0], in = x->shape[1], out = y->shape[1], shared = in < out ? in : out;
    const float *input = x->data;
    float *output = y->data;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < shared; i++) output[r * out + i] += *adapter->scale * input[r * in + i];
    (void)site;
    if (saved != NULL) *saved = NULL;
    return PH_STATUS_OK;
}

static ph_status adapter_backward(ph_instance *instance, ph_saved *saved, int64_t site, const ph_tensor *x, const ph_tensor *d_y,
                                  ph_tensor *d_x, ph_error_sink *errors) {
    (void)saved;
    (void)site;
    (void)errors;
    fixture_adapter *adapter = (fixture_adapter *)instance;
    const int64_t rows = x->shape[0], in = x->shape[1], out = d_y->shape[1], shared = in < out ? in : out;
    const float *input = x->data, *dy = d_y->data;
    float *dx = d_x->data;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t i = 0; i < shared; i++) {
            dx[r * in + i] += *adapter->scale * dy[r * out + i];
            *adapter->scale_gradient += dy[r * out + i] * input[r * in + i];
        }
    }
    return PH_STATUS_OK;
}

static ph_status adapter_merge(ph_instance *instance, int64_t site, ph_tensor *weight, ph_error_sink *errors) {
    (void)site;
    (void)errors;
    fixture_adapter *adapter = (fixture_adapter *)instance;
    const int64_t out = weight->shape[0], in = weight->shape[1], shared = in < out ? in : out;
    float *w = weight->data;
    for (int64_t i = 0; i < shared; i++) w[i * in + i] += *adapter->scale;
    return PH_STATUS_OK;
}

static const ph_adapter_methods adapter_methods = {
    sizeof(ph_adapter_methods), adapter_hooks, adapter_forward, adapter_backward, release_block, adapter_merge,
};
static const ph_component_descriptor adapter_descriptor = {
    sizeof(ph_component_descriptor), PH_COMPONENT_ENCODER_ADAPTER, "fixture.adapter", "1.0.0", "Fixture adapter",
    "Adds scale * x to matching linear layers", "{\"match\": \"query\"}",
};
static const ph_component adapter_component = {
    sizeof(ph_component), &adapter_descriptor, adapter_create, head_destroy, adapter_bind, NULL, NULL, &adapter_methods,
};

/* ---- Extension functions: one per type letter. ---- */

static int32_t add_int32(int32_t a, int32_t b) { return a + b; }
static int64_t scale_int64(int64_t a, double factor) { return (int64_t)((double)a * factor); }
static float mix(float a, double b, int32_t c, int64_t d) { return a + (float)b + (float)c + (float)d; }
static const char *echo_length(const char *text) {
    static const char *names[] = {"empty", "short", "long"};
    size_t length = strlen(text);
    return names[length == 0 ? 0 : (length < 5 ? 1 : 2)];
}
static double tensor_sum(const ph_tensor *tensor, ph_error_sink *errors) {
    if (tensor->dtype != PH_DTYPE_F32) {
        fail(errors, PH_STATUS_INVALID_ARGUMENT, "tensor_sum needs an F32 tensor");
        return 0;
    }
    double sum = 0;
    for (int64_t i = 0; i < ph_tensor_count(tensor); i++) sum += ((const float *)tensor->data)[i];
    return sum;
}
static void always_fails(ph_error_sink *errors) { fail(errors, PH_STATUS_ERROR, "always_fails did what it says"); }
static int64_t pointer_is_null(void *pointer) { return pointer == NULL; }

#define EXTENSION(name, signature, function) \
    static const ph_extension_function extension_##name = { \
        sizeof(ph_extension_function), 0, #name, signature, #name " (test)", (ph_generic_function)(void (*)(void))function}
EXTENSION(add_int32, "i(ii)", add_int32);
EXTENSION(scale_int64, "l(ld)", scale_int64);
EXTENSION(mix, "f(fdil)", mix);
EXTENSION(echo_length, "s(s)", echo_length);
EXTENSION(tensor_sum, "d(te)", tensor_sum);
EXTENSION(always_fails, "v(e)", always_fails);
EXTENSION(pointer_is_null, "l(p)", pointer_is_null);
#ifdef BAD_SIGNATURE
EXTENSION(bad, "q(ii)", add_int32);
#endif

static const ph_extension_function *const extensions[] = {
    &extension_add_int32, &extension_scale_int64, &extension_mix, &extension_echo_length,
    &extension_tensor_sum, &extension_always_fails, &extension_pointer_is_null,
#ifdef BAD_SIGNATURE
    &extension_bad,
#endif
};

static const ph_component *const components[] = {&head_component, &router_component, &adapter_component, &null_component};

static const ph_plugin plugin = {
    PLUGIN_SIZE, ANSWER_MAJOR, ANSWER_MINOR, PLUGIN_ID, "0.1.0", "Fixture plugin", TOOLCHAIN,
    sizeof components / sizeof components[0], components, sizeof extensions / sizeof extensions[0], extensions,
};

PH_EXPORT ph_status polyhead_plugin_entry(const ph_host *host, const ph_plugin **out_plugin, ph_error_sink *errors) {
#ifdef ENTRY_FAILS
    (void)host;
    (void)out_plugin;
    (void)services;
    (void)&plugin;
    return fail(errors, PH_STATUS_UNSUPPORTED, "this fixture refuses every host on purpose");
#else
    (void)errors;
    services = host->services;
    *out_plugin = &plugin;
    return PH_STATUS_OK;
#endif
}
