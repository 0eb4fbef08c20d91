/* Runs the library on windows under QEMU: reads them from the host through semihosting (windows.bin: each window's
   audio where the model takes audio, then the host's own model input), writes what the core computed (results.bin),
   and prints one line of figures. Exit code 0 when all ran. */
#include <stdio.h>
#include <string.h>

#include "board.h"
#include "edgekd_model.h"
#if EDGEKD_FRONTEND_OUTSIDE
#include "edgekd_frontend.h"
#endif

static unsigned char given[EDGEKD_INPUT_BYTES];
#if EDGEKD_TAKES_AUDIO
static float audio[EDGEKD_AUDIO_SAMPLES];
static float embedding[EDGEKD_EMBEDDING_DIM];
#endif
#if EDGEKD_FRONTEND_OUTSIDE
static float logmel[EDGEKD_N_MELS * EDGEKD_FRAMES];
#endif

static int fail(const char* what, int code) {
  printf("EDGEKD-ERROR %s (%d)\n", what, code);
  return 3;
}

int main(void) {
  board_clock_start();
  board_stack_paint();
  uint64_t start = board_instructions();
  int status = edgekd_init();
  uint64_t init_instructions = board_instructions() - start;
  uint32_t init_stack = board_stack_used();
  if (status != 0) return fail("edgekd_init", status);
  FILE* windows = fopen("windows.bin", "rb");
  FILE* results = fopen("results.bin", "wb");
  if (windows == NULL || results == NULL) return fail("opening windows.bin or results.bin", 0);
  unsigned count = 0;
  if (fread(&count, sizeof count, 1, windows) != 1) return fail("reading windows.bin", 0);
  uint32_t deepest = init_stack;
  for (unsigned n = 0; n < count; ++n) {
#if EDGEKD_TAKES_AUDIO
    if (fread(audio, sizeof audio, 1, windows) != 1) return fail("reading windows.bin", (int)n);
#endif
    if (fread(given, sizeof given, 1, windows) != 1) return fail("reading windows.bin", (int)n);
    uint64_t figures[2] = {0, 0}; /* instructions: the front-end, the network */
    board_stack_paint();
#if EDGEKD_FRONTEND_OUTSIDE
    start = board_instructions();
    status = edgekd_logmel(audio, logmel);
    figures[0] = board_instructions() - start;
    if (status != 0) return fail("edgekd_logmel", status);
    status = edgekd_embed_logmel(logmel, embedding);
    if (status != 0) return fail("edgekd_embed_logmel", status);
#elif EDGEKD_TAKES_AUDIO
    status = edgekd_embed_audio(audio, embedding);
    if (status != 0) return fail("edgekd_embed_audio", status);
#endif
    /* the host's own model input, so that the network's outputs compare byte for byte */
    memcpy(edgekd_input(), given, sizeof given);
    start = board_instructions();
    status = edgekd_invoke();
    figures[1] = board_instructions() - start;
    if (status != 0) return fail("edgekd_invoke", status);
    uint32_t stack = board_stack_used();
    if (stack > deepest) deepest = stack;
    fwrite(figures, sizeof figures, 1, results);
#if EDGEKD_FRONTEND_OUTSIDE
    fwrite(logmel, sizeof logmel, 1, results);
#endif
#if EDGEKD_TAKES_AUDIO
    fwrite(embedding, sizeof embedding, 1, results);
#endif
    fwrite(edgekd_output(), EDGEKD_OUTPUT_BYTES, 1, results);
  }
  fclose(results);
  fclose(windows);
  printf("EDGEKD-RESULT windows=%u arena_used=%u stack=%u init_instructions=%llu\n", count,
         (unsigned)edgekd_arena_used(), (unsigned)deepest, (unsigned long long)init_instructions);
  return 0;
}
