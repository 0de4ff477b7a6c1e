/* Where the code and data of every accept and close are placed.
 *
 * A preforked server's workers take turns on a CPU, and on a machine
 * without tagged TLBs (no PCID: common in VMs) each switch between them
 * empties the TLB: each page the library touches on the way of a
 * connection is then one page walk more for that connection. The
 * functions of that way are marked IL_HOT (GCC puts them in .text.hot,
 * which the linker gathers in one run of pages), and the variables they
 * read into one section of their own (IL_HOT_DATA), so that the library's
 * share of each connection's page walks is a few pages instead of one per
 * function and variable spread over the image. Only the straight paths
 * belong here: a cold function marked hot would spread the run again. */
#ifndef IL_HOT_H
#define IL_HOT_H

/* The straight paths also go without the stack protector, which
 * distributions turn on (Debian's packages: -fstack-protector-strong). Its
 * canary lives in the thread's control block (%fs:0x28 on x86-64): a
 * function that has one reads a page the straight path otherwise leaves
 * alone, and spends five instructions on it. These functions keep no
 * buffer of their own: a va_list (fcntl) or a scalar whose address goes
 * to an inlined helper is what earns them one. */
#if defined(__has_attribute)
#if __has_attribute(no_stack_protector)
#define IL_NO_CANARY __attribute__((no_stack_protector))
#endif
#endif
#ifndef IL_NO_CANARY
#define IL_NO_CANARY
#endif

#define IL_HOT __attribute__((hot)) IL_NO_CANARY
#define IL_HOT_DATA __attribute__((section(".data.il_hot")))

#endif
