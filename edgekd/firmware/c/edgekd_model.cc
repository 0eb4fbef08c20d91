#include "edgekd_model.h"

#include <math.h>
#include <new>
#include <string.h>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"
#if EDGEKD_FRONTEND_OUTSIDE
#include "edgekd_frontend.h"
#endif

extern "C" const unsigned char edgekd_model_data[]; /* edgekd_model_data.cc */

namespace {

alignas(16) uint8_t arena[EDGEKD_ARENA_BYTES];
alignas(tflite::MicroInterpreter) uint8_t interpreter_storage[sizeof(tflite::MicroInterpreter)];
alignas(tflite::MicroMutableOpResolver<EDGEKD_OPERATOR_COUNT>) uint8_t
    resolver_storage[sizeof(tflite::MicroMutableOpResolver<EDGEKD_OPERATOR_COUNT>)];
tflite::MicroInterpreter* interpreter = nullptr;
#if EDGEKD_FRONTEND_OUTSIDE
float features[EDGEKD_N_MELS * EDGEKD_FRAMES];
#endif

/* The file's own tensor types and sizes must be the ones this library was generated for. */
bool matches(const TfLiteTensor* tensor, TfLiteType type, size_t bytes) {
  return tensor != nullptr && tensor->type == type && tensor->bytes == bytes;
}

[[maybe_unused]] int dequantised_output(float* embedding) {
  const TfLiteTensor* out = interpreter->output(0);
#if EDGEKD_OUTPUT_INT8
  for (int i = 0; i < EDGEKD_EMBEDDING_DIM; ++i) {
    embedding[i] = (out->data.int8[i] - out->params.zero_point) * out->params.scale;
  }
#else
  memcpy(embedding, out->data.f, EDGEKD_EMBEDDING_DIM * sizeof(float));
#endif
  return 0;
}

}  // namespace

extern "C" int edgekd_init(void) {
  const tflite::Model* model = tflite::GetModel(edgekd_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) return 1;
  auto* resolver = new (resolver_storage) tflite::MicroMutableOpResolver<EDGEKD_OPERATOR_COUNT>();
  EDGEKD_REGISTER_OPERATORS((*resolver));
  interpreter = new (interpreter_storage) tflite::MicroInterpreter(model, *resolver, arena, EDGEKD_ARENA_BYTES);
  if (interpreter->AllocateTensors() != kTfLiteOk) return 2;
  if (!matches(interpreter->input(0), EDGEKD_INPUT_TFLITE_TYPE, EDGEKD_INPUT_BYTES) ||
      !matches(interpreter->output(0), EDGEKD_OUTPUT_TFLITE_TYPE, EDGEKD_OUTPUT_BYTES)) {
    return 3;
  }
  return 0;
}

extern "C" void* edgekd_input(void) { return interpreter->input(0)->data.data; }

extern "C" const void* edgekd_output(void) { return interpreter->output(0)->data.data; }

extern "C" int edgekd_invoke(void) { return interpreter->Invoke() == kTfLiteOk ? 0 : 4; }

extern "C" size_t edgekd_arena_used(void) { return interpreter->arena_used_bytes(); }

#if EDGEKD_FRONTEND_OUTSIDE
extern "C" int edgekd_embed_logmel(const float* logmel, float* embedding) {
  TfLiteTensor* in = interpreter->input(0);
#if EDGEKD_INPUT_INT8
  /* round half to even, as the host's quantiser (numpy) does */
  for (int i = 0; i < EDGEKD_N_MELS * EDGEKD_FRAMES; ++i) {
    long q = lrintf(logmel[i] / in->params.scale) + in->params.zero_point;
    in->data.int8[i] = (int8_t)(q < -128 ? -128 : q > 127 ? 127 : q);
  }
#elif EDGEKD_INPUT_INT16
  for (int i = 0; i < EDGEKD_N_MELS * EDGEKD_FRAMES; ++i) {
    long q = lrintf(logmel[i] / in->params.scale) + in->params.zero_point;
    in->data.i16[i] = (int16_t)(q < -32768 ? -32768 : q > 32767 ? 32767 : q);
  }
#else
  memcpy(in->data.f, logmel, EDGEKD_INPUT_BYTES);
#endif
  if (edgekd_invoke() != 0) return 4;
  return dequantised_output(embedding);
}

extern "C" int edgekd_embed_audio(const float* audio, float* embedding) {
  if (edgekd_logmel(audio, features) != 0) return 5;
  return edgekd_embed_logmel(features, embedding);
}
#elif EDGEKD_TAKES_AUDIO
extern "C" int edgekd_embed_audio(const float* audio, float* embedding) {
  memcpy(interpreter->input(0)->data.f, audio, EDGEKD_INPUT_BYTES);
  if (edgekd_invoke() != 0) return 4;
  return dequantised_output(embedding);
}
#endif
