/* Polyhead plugin ABI: components (task heads, routers, encoder adapters).
 *
 * A plugin file publishes any number of components. Each has a descriptor (what it is),
 * a create/destroy pair, a parameter binding function, and exactly one table of methods
 * for its kind. Instances are opaque to the host.
 *
 * Lifecycle, in order (all on one thread at a time for a given instance):
 *   create(args)            the plugin reads its config, declares its parameters
 *   host allocates parameters, initialises them (or loads them from a checkpoint)
 *   bind_parameters(views)  the plugin keeps the views; they stay valid until destroy
 *   ... kind methods (forward, loss, backward, ...) any number of times ...
 *   destroy(instance)
 */
#ifndef POLYHEAD_COMPONENT_H
#define POLYHEAD_COMPONENT_H

#include "host.h"
#include "parameters.h"

PH_EXTERN_C_BEGIN

#define PH_COMPONENT_TASK_HEAD 1       /* maps features to a task's outputs and loss */
#define PH_COMPONENT_ROUTER 2          /* one instance shared by several tasks (e.g. MMoE) */
#define PH_COMPONENT_ENCODER_ADAPTER 3 /* hooks into the encoder's linear layers (e.g. LoRA) */

/* Plugin-defined instance state; the host only passes the pointer back. */
typedef struct ph_instance ph_instance;

/* Plugin-defined state saved by a forward pass for its backward pass. */
typedef struct ph_saved ph_saved;

struct ph_head_methods;
struct ph_router_methods;
struct ph_adapter_methods;

/* Ownership: plugin-owned, static storage (valid while the process runs; plugins are
 * never unloaded). */
typedef struct ph_component_descriptor {
    uint32_t size;
    int32_t kind;              /* PH_COMPONENT_* */
    const char *id;            /* globally unique, [a-z0-9_.-], e.g. "polyhead.classification";
                                * run configs and checkpoints name components by it */
    const char *version;       /* "MAJOR.MINOR.PATCH" of the component (not of the ABI);
                                * a checkpoint saved with MAJOR loads only into MAJOR */
    const char *name;          /* human name, e.g. "Classification head" */
    const char *description;   /* one line */
    const char *example_config; /* a JSON object create() accepts; `polyhead plugins inspect`
                                 * creates an instance from it to list parameters */
} ph_component_descriptor;

/* An encoder linear layer an adapter may hook (adapters only). Host-owned, valid until
 * the instance is destroyed. */
typedef struct ph_linear_site {
    uint32_t size;
    const char *name;      /* Hugging Face parameter prefix, e.g. "encoder.layer.0.attention.self.query" */
    int64_t in_features;
    int64_t out_features;
} ph_linear_site;

/* Ownership: host-owned, valid for the duration of create() unless noted. */
typedef struct ph_create_args {
    uint32_t size;
    int32_t reserved;           /* 0 */
    const char *instance_name;  /* the task (or router) name in the run, for messages */
    const char *config_json;    /* the instance's config as JSON text (an object) */
    const ph_json *config;      /* the same, parsed; read it through services->json_* */
    int64_t input_width;        /* width of the feature rows the instance will receive:
                                 * the encoder hidden size, or a router's output width */
    const ph_host_services *services; /* valid until the process exits */
    ph_rng *rng;                /* this instance's random stream, valid until destroy */

    /* Declares the next parameter; call it once per parameter, in a fixed order, during
     * create() only. The host copies *spec. Returns PH_STATUS_INVALID_ARGUMENT (and a
     * message through `errors`) for a bad name, shape, flag or initialiser; create()
     * should then fail with that status. */
    ph_status (*declare_parameter)(ph_parameter_declarer *declarer, const ph_parameter_spec *spec,
                                   ph_error_sink *errors);
    ph_parameter_declarer *declarer;

    /* Routers: the tasks sharing the instance, in task-index order. Others: 0, NULL. */
    int32_t task_count;
    const char *const *task_names;

    /* Adapters: the encoder's linear layers, in site-index order. Others: 0, NULL.
     * The array and the sites stay valid until destroy. */
    int64_t site_count;
    const ph_linear_site *const *sites;
} ph_create_args;

typedef struct ph_component {
    uint32_t size;
    const ph_component_descriptor *descriptor;

    /* Builds an instance from args->config. On success writes *out_instance (plugin-owned
     * until destroy) and returns PH_STATUS_OK; on failure reports through `errors`, leaves
     * *out_instance NULL and frees anything it allocated. Called on one thread at a time. */
    ph_status (*create)(const ph_create_args *args, ph_instance **out_instance, ph_error_sink *errors);

    /* Frees the instance and everything it owns (not the bound parameter memory, which is
     * the host's). Called once, after any saved states were released. Never fails. */
    void (*destroy)(ph_instance *instance);

    /* Gives the instance views of its parameters, in declaration order: count equals the
     * number declared. values[i] and gradients[i] are F32 with the declared shape;
     * gradients[i]->data is NULL for a parameter that is not trainable. The views and the
     * memory behind them are host-owned and valid, at the same addresses, until destroy.
     * Called once, after the host initialised the values. The plugin may derive buffers
     * here (e.g. copy class weights from its config into a non-trainable parameter). */
    ph_status (*bind_parameters)(ph_instance *instance, int64_t count, const ph_tensor *const *values,
                                 const ph_tensor *const *gradients, ph_error_sink *errors);

    /* Exactly one of these is non-NULL, the one matching descriptor->kind. Plugin-owned,
     * static storage. */
    const struct ph_head_methods *head;
    const struct ph_router_methods *router;
    const struct ph_adapter_methods *adapter;
} ph_component;

PH_EXTERN_C_END

#endif /* POLYHEAD_COMPONENT_H */
