#ifndef EDGEKD_BOARD_H_
#define EDGEKD_BOARD_H_
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
#define BOARD_STACK_PROBE (64u * 1024u) /* deepest stack measurable */
#define BOARD_INSTRUCTIONS_PER_TICK 40u /* SysTick at 25 MHz against QEMU's 1 GHz virtual clock (-icount shift=0) */
void board_clock_start(void);
uint64_t board_instructions(void);
void board_stack_paint(void);
uint32_t board_stack_used(void);
#ifdef __cplusplus
}
#endif
#endif
