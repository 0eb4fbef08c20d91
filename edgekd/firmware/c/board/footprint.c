/* The library as an application links it, without the harness's file I/O: its flash and static RAM are what a
   device pays (the buffers below are the application's, and left out). Never run. */
#include <string.h>

#include "edgekd_model.h"

#if EDGEKD_TAKES_AUDIO
static float audio[EDGEKD_AUDIO_SAMPLES];
static float embedding[EDGEKD_EMBEDDING_DIM];
#endif

int main(void) {
  if (edgekd_init() != 0) return 1;
#if EDGEKD_TAKES_AUDIO
  return edgekd_embed_audio(audio, embedding);
#else
  memset(edgekd_input(), 0, EDGEKD_INPUT_BYTES);
  return edgekd_invoke();
#endif
}
