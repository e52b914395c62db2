#ifndef DISTILL_KD_H
#define DISTILL_KD_H
// kd.h: logit distillation's loss and gradient per row (kd.cu).
#ifdef __cplusplus
extern "C" {
#endif

// For each of rows rows of student logits z (rows, vocab) and teacher
// logits t (rows, vocab): loss[r] = α·CE(z, target) + (1−α)·τ²·D(p_t ‖ p_s)
// with p = softmax(·/τ), D forward KL (div 0), reverse KL (1) or JSD(β) (2),
// as core/train's KD.row; z becomes scale·dloss/dz (row_scale[r] in place
// of scale when row_scale is not null). Sums in f64.
int dc_kd_rows(float *loss, float *z, const float *t, const int32_t *target, int rows, int vocab,
               int div, float tau, float alpha, float beta, float scale, const float *row_scale);

#ifdef __cplusplus
}
#endif
#endif
