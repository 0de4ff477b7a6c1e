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

#define IL_HOT __attribute__((hot))
#define IL_HOT_DATA __attribute__((section(".data.il_hot")))

#endif
