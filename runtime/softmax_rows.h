/* softmax_rows.h — the row kernels of ops_softmax.c that the fused losses in
 * ops_loss.c reuse. Rows are groups of rows of a contiguous [outer, C, inner]
 * tensor: softmax_group gives up to SOFTMAX_GROUP rows starting at `row`,
 * their first element's offset and their row/column strides. */
#ifndef FASTC_SOFTMAX_ROWS_H
#define FASTC_SOFTMAX_ROWS_H
#include <stdint.h>

enum { SOFTMAX_GROUP = 64 }; /* the most rows softmax_group gives */

int64_t softmax_groups(int64_t outer, int64_t inner);
void softmax_group(int64_t g, int64_t C, int64_t inner, int64_t *row, int64_t *nrows,
                   int64_t *offset, int64_t *rs, int64_t *cs);
/* lse[i] = log sum_j exp(x[i, j]) for n rows of C elements, columns cs apart */
void softmax_lse_f32(const float *x, int64_t n, int64_t C, int64_t cs, float *lse);
void softmax_lse_f64(const double *x, int64_t n, int64_t C, int64_t cs, double *lse);
/* y[i, j] = exp(x[i, j] - lse[i]) * scale[i] */
void softmax_scaled_f32(float *y, const float *x, int64_t n, int64_t C, int64_t cs,
                        const float *lse, const float *scale);
void softmax_scaled_f64(double *y, const double *x, int64_t n, int64_t C, int64_t cs,
                        const double *lse, const double *scale);
#endif
