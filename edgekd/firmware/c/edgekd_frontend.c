#include "edgekd_frontend.h"

#include <math.h>
#include <string.h>

#include "dsp/transform_functions.h"

/* edgekd_frontend_tables.c: the window and the mel filterbank, from the run that trained the student. */
extern const float edgekd_window[EDGEKD_N_FFT];
extern const unsigned short edgekd_mel_first[EDGEKD_N_MELS]; /* first FFT bin of each mel filter */
extern const unsigned short edgekd_mel_count[EDGEKD_N_MELS]; /* its number of non-zero weights */
extern const float edgekd_mel_weights[];                      /* the weights, filter after filter */

#define BINS (EDGEKD_N_FFT / 2 + 1)

static float frame[EDGEKD_N_FFT];
static float spectrum[EDGEKD_N_FFT];
static float power[BINS];

int edgekd_logmel(const float* audio, float* logmel) {
  arm_rfft_fast_instance_f32 fft;
  if (EDGEKD_RFFT_INIT(&fft) != ARM_MATH_SUCCESS) return 1;
  const int pad = EDGEKD_N_FFT / 2; /* centre padding with zeros, as librosa and edgekd's front-end */
  float loudest = -INFINITY;
  for (int f = 0; f < EDGEKD_FRAMES; ++f) {
    const int start = f * EDGEKD_HOP - pad;
    for (int k = 0; k < EDGEKD_N_FFT; ++k) {
      const int at = start + k;
      frame[k] = (at >= 0 && at < EDGEKD_AUDIO_SAMPLES) ? audio[at] * edgekd_window[k] : 0.0f;
    }
    arm_rfft_fast_f32(&fft, frame, spectrum, 0); /* packs bin N/2's real part beside bin 0's */
    power[0] = spectrum[0] * spectrum[0];
    power[BINS - 1] = spectrum[1] * spectrum[1];
    for (int b = 1; b < BINS - 1; ++b) {
      power[b] = spectrum[2 * b] * spectrum[2 * b] + spectrum[2 * b + 1] * spectrum[2 * b + 1];
    }
    const float* weight = edgekd_mel_weights;
    for (int m = 0; m < EDGEKD_N_MELS; ++m) {
      float sum = 0.0f;
      for (int i = 0; i < edgekd_mel_count[m]; ++i) sum += weight[i] * power[edgekd_mel_first[m] + i];
      weight += edgekd_mel_count[m];
      const float db = 10.0f * log10f(sum > EDGEKD_LOG_FLOOR ? sum : EDGEKD_LOG_FLOOR);
      logmel[m * EDGEKD_FRAMES + f] = db;
      if (db > loudest) loudest = db;
    }
  }
#if EDGEKD_TOP_DB_FLOOR
  /* relative to the loudest bin of the window, floored at -top_db */
  for (int i = 0; i < EDGEKD_N_MELS * EDGEKD_FRAMES; ++i) {
    const float db = logmel[i] - loudest;
    logmel[i] = db > -EDGEKD_TOP_DB ? db : -EDGEKD_TOP_DB;
  }
#endif
  return 0;
}
