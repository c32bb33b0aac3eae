/* Polyhead plugin ABI: task heads.
 *
 * Features arrive packed, without padding: the encoder's last hidden state for every
 * token of every sequence in the task's part of the batch, one row per token, with
 * sequence offsets. Pooling (CLS, mean, max) is therefore the head's business.
 * Dimension legend: B sequences, T tokens (all sequences together), H input width,
 * C output width, W target width.
 */
#ifndef POLYHEAD_HEAD_H
#define POLYHEAD_HEAD_H

#include "component.h"

PH_EXTERN_C_BEGIN

#define PH_GRANULARITY_SEQUENCE 1 /* one output row and one target row per sequence */
#define PH_GRANULARITY_TOKEN 2    /* one output row and one target row per token */

/* For token-granular I64 targets: a row the loss must ignore (special tokens, word pieces
 * after a word's first). */
#define PH_TARGET_IGNORED (-1)

/* Host-owned input, valid for the duration of the call. */
typedef struct ph_head_input {
    uint32_t size;
    int32_t training;                  /* 1 while training (dropout active), else 0 */
    const ph_tensor *features;         /* F32 [T, H] */
    const ph_tensor *sequence_offsets; /* I64 [B + 1]: sequence b is rows offsets[b] ..< offsets[b+1];
                                        * offsets[0] = 0, offsets[B] = T, every sequence non-empty */
    const ph_tensor *word_ids;         /* I32 [T]: index of the word a token belongs to within its
                                        * sequence, or -1 for special tokens ([CLS], [SEP]) */
} ph_head_input;

/* Written by the head: the shapes the host allocates for it. Out-struct rule: the host
 * sets `size` to its sizeof; the plugin writes only fields that fit in it. */
typedef struct ph_head_layout {
    uint32_t size;
    int32_t granularity;  /* PH_GRANULARITY_* */
    int64_t output_width; /* C */
    int64_t target_width; /* W */
    int32_t target_dtype; /* PH_DTYPE_I64 (class indices) or PH_DTYPE_F32 */
    int32_t reserved;
} ph_head_layout;

/* Every function: instance methods are never called concurrently for one instance (the
 * host serialises them), may be called from different threads over time, return
 * PH_STATUS_OK or report through `errors`. Tensors passed in are host-owned views valid for
 * the call; the plugin must not keep them (parameters bound at bind_parameters excepted). */
typedef struct ph_head_methods {
    uint32_t size;

    /* Shapes of outputs and targets. Must not change after create. */
    ph_status (*layout)(ph_instance *instance, ph_head_layout *out_layout, ph_error_sink *errors);

    /* Turns one example's label, as written in the data (a JSON value), into its target
     * rows: out_target is [R, W] of layout.target_dtype, R = 1 for sequence heads or the
     * example's token count for token heads. word_ids is I32 [R] (token heads) or NULL.
     * A label the head does not know is PH_STATUS_INVALID_ARGUMENT naming the label. */
    ph_status (*encode_target)(ph_instance *instance, const ph_json *label, const ph_tensor *word_ids,
                               ph_tensor *out_target, ph_error_sink *errors);

    /* Optional (may be NULL): sees every training target once before training, [N, W],
     * to fit statistics into its non-trainable parameters (target standardisation,
     * balanced class weights). */
    ph_status (*prepare)(ph_instance *instance, const ph_tensor *targets, ph_error_sink *errors);

    /* outputs: F32 [B, C] or [T, C], host-owned, written entirely by the head.
     * When input->training is 1, *out_saved receives plugin-owned state for backward (may
     * be NULL if the head needs none) that the host later passes to release_saved exactly
     * once. When training is 0 the host passes out_saved = NULL. */
    ph_status (*forward)(ph_instance *instance, const ph_head_input *input, ph_tensor *outputs,
                         ph_saved **out_saved, ph_error_sink *errors);

    /* The reduced loss of outputs against targets into *out_loss, and its gradient with
     * respect to every output into d_outputs (same shape, overwritten). Pure: reads no
     * saved state, so it can run at evaluation time too. */
    ph_status (*loss)(ph_instance *instance, const ph_tensor *outputs, const ph_tensor *targets,
                      ph_tensor *d_outputs, double *out_loss, ph_error_sink *errors);

    /* Given d(loss)/d(outputs), writes d(loss)/d(features) into d_features (F32 [T, H],
     * overwritten, every element) and ADDS d(loss)/d(parameter) into the bound gradients.
     * `input` is the same as the forward's. `saved` stays plugin-owned. */
    ph_status (*backward)(ph_instance *instance, ph_saved *saved, const ph_head_input *input,
                          const ph_tensor *d_outputs, ph_tensor *d_features, ph_error_sink *errors);

    /* Frees a forward's saved state. Never fails; NULL is accepted. */
    void (*release_saved)(ph_instance *instance, ph_saved *saved);

    /* Writes one example's prediction as a JSON value into `sink`, using label names,
     * e.g. {"label":"noun.animal","score":0.93}. outputs: the example's rows [R, C];
     * word_ids: I32 [R] for token heads, else NULL. */
    ph_status (*decode)(ph_instance *instance, const ph_tensor *outputs, const ph_tensor *word_ids,
                        ph_text_sink *sink, ph_error_sink *errors);
} ph_head_methods;

PH_EXTERN_C_END

#endif /* POLYHEAD_HEAD_H */
