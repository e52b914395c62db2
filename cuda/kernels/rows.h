#ifndef DISTILL_ROWS_H
#define DISTILL_ROWS_H
// rows.h: row gathers and scatters of the device-resident trainer (rows.cu).
#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif
#endif
