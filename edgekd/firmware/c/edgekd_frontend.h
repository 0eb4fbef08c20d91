/* The student's log-mel front-end in C, as edgekd's PyTorch front-end computes it: centre-padded frames, periodic
   Hann window, CMSIS-DSP's real FFT, power, the trained mel filterbank, dB, and the top_db floor. */
#ifndef EDGEKD_FRONTEND_H_
#define EDGEKD_FRONTEND_H_

#include "edgekd_config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* EDGEKD_AUDIO_SAMPLES samples -> EDGEKD_N_MELS x EDGEKD_FRAMES dB values, [mel][frame]. 0 on success. */
int edgekd_logmel(const float* audio, float* logmel);

#ifdef __cplusplus
}
#endif

#endif
