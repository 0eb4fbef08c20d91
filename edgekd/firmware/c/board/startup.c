/* The emulated board's start-up: a vector table at 0, the FPU enabled before any float instruction, SysTick
   counting instructions (QEMU -icount shift=0: one tick every 40 instructions), and the stack's high-water mark. */
#include <stdint.h>

#include "board.h"

#define SCB_CPACR (*(volatile uint32_t*)0xE000ED88u)
#define SYST_CSR (*(volatile uint32_t*)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t*)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t*)0xE000E018u)
#define SYST_RELOAD 0x00FFFFFFu

extern uint32_t __stack_top, __bss_start__, __bss_end__;
int main(void);

void _init(void) {}
void _fini(void) {}
extern void __libc_init_array(void);
extern void exit(int code);
#ifdef BOARD_SEMIHOSTING
extern void initialise_monitor_handles(void); /* newlib's rdimon: stdio and files through the host */
#endif

/* newlib's crt0 would take the stack QEMU's semihosting reports, outside the board's RAM: this start keeps the
   vector table's, at the top of RAM, far above the heap. */
void _start(void) {
  for (uint32_t* word = &__bss_start__; word < &__bss_end__; ++word) *word = 0;
#ifdef BOARD_SEMIHOSTING
  initialise_monitor_handles();
#endif
  __libc_init_array();
  exit(main());
}

static volatile uint32_t wraps;

void SysTick_Handler(void) { ++wraps; }

void board_clock_start(void) {
  SYST_RVR = SYST_RELOAD;
  SYST_CVR = 0;
  SYST_CSR = 7u; /* processor clock, interrupt, enable */
  while (SYST_CVR == 0) { /* until the first reload: a count read before it would run backwards */
  }
}

uint64_t board_instructions(void) {
  uint32_t before, value;
  do { /* a wrap between the two reads would count twice */
    before = wraps;
    value = SYST_CVR;
  } while (before != wraps);
  return ((uint64_t)before * (SYST_RELOAD + 1u) + (SYST_RELOAD - value)) * BOARD_INSTRUCTIONS_PER_TICK;
}

#define PAINT 0x5AC3A55Cu

#define PROBE_WORDS (BOARD_STACK_PROBE / 4)

/* Paints BOARD_STACK_PROBE bytes of stack below the caller's frame (wherever crt0 put the stack: far above the
   heap on these boards); board_stack_used() then says how deep the calls in between went. */
static volatile uint32_t* painted_from;

__attribute__((noinline)) void board_stack_paint(void) {
  uint32_t sp;
  __asm volatile("mov %0, sp" : "=r"(sp)); /* the register, not a local's address: the compiler may not move it */
  painted_from = (volatile uint32_t*)(sp & ~7u) - 16;
  for (volatile uint32_t* word = painted_from - PROBE_WORDS; word < painted_from; ++word) *word = PAINT;
}

uint32_t board_stack_used(void) {
  volatile uint32_t* word = painted_from - PROBE_WORDS;
  while (word < painted_from && *word == PAINT) ++word;
  return (uint32_t)((volatile uint8_t*)painted_from - (volatile uint8_t*)word);
}

void Reset_Handler(void) {
  SCB_CPACR |= 0xFu << 20; /* CP10 and CP11: full access */
  __asm volatile("dsb\n\tisb");
  _start();
  for (;;) {
  }
}

static void Fault_Handler(void) {
  for (;;) {
  }
}

__attribute__((section(".vectors"), used)) void (*const board_vectors[16])(void) = {
    (void (*)(void))&__stack_top, Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, 0, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler, SysTick_Handler};
