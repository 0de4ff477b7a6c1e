/* vfork(): marks the child, so that the wrappers leave the parent's
 * records alone while it runs.
 *
 * A vfork child runs in its parent's memory, so the fd map and the
 * library's own-fd records it would change are the parent's, but its fd
 * table is its own copy: its closes, dups and close_ranges (Python's
 * subprocess closes every fd but a few, then dup2s the pipes onto 0-2)
 * change nothing the parent holds. The wrappers ask il_vfork_child()
 * and, when it says so, make the real call and record nothing. The
 * child's copies of counted fds that survive its exec are not counted
 * (as after posix_spawn: the count errs low, never high); the exec'd
 * program still joins the service's table (inherit.c).
 *
 * The mark is a word of the calling thread's TLS, which the child shares
 * (same memory, same thread pointer) while that thread is suspended: set
 * in the child when vfork returns 0, cleared in the parent when it
 * returns again (the child has exec'd or exited). Other threads of the
 * parent run on meanwhile with their own word, unmarked.
 *
 * No C function can return twice from vfork: the child's first calls
 * would overwrite the wrapper's frame, which the parent then returns
 * through. So the wrapper is a few instructions that keep nothing on the
 * stack: the host's return address goes to TLS (il_vfork_return), libc's
 * vfork is called (it keeps its own return address in a register), and
 * both child and parent set the mark and jump back through the saved
 * address. A vfork child that calls vfork again overwrites the saved
 * address its suspended parent thread will return through: as for any
 * call in a vfork child but exec and _exit, POSIX leaves that undefined. */
#include <stdint.h>
#include <sys/types.h>

#include "asm_entry.h"
#include "interpose.h"
#include "real.h"

/* Named by the assembly below: kept, and kept by these names (used). The
 * vfork it calls is il_vfork_next (real.h). Before it, the wrapper moves
 * close()'s way for counted fds to one that asks for the mark
 * (il_close_way_vforked, interpose.c): a function call, with nothing of
 * the host's to keep but the return address, already in TLS. */
__attribute__((used)) _Thread_local int il_vfork_mark;
extern _Thread_local uintptr_t il_vfork_return
    __attribute__((tls_model("initial-exec"), visibility("hidden")));
__attribute__((used)) _Thread_local uintptr_t il_vfork_return;

#if defined(__x86_64__)
#ifdef __CET__
/* With shadow stacks (CET builds only: an object without the marking
 * turns them off for the whole process), the host's call left an entry
 * that no ret pops: the parent (the only one that reaches this) drops it (libc's vfork leaves the child's
 * on purpose, so that a child returning from the calling function
 * faults). rdsspq reads 0 where shadow stacks are off, and incsspq is
 * then never reached. The flags are those of vfork's result's test. */
#define IL_SHSTK_POP_PARENT                                                              \
    "    jz 2f\n"                                                                        \
    "    xorl %edi, %edi\n"                                                              \
    "    rdsspq %rdi\n"                                                                  \
    "    testq %rdi, %rdi\n"                                                             \
    "    jz 1f\n"                                                                        \
    "    movl $1, %edi\n"                                                                \
    "    incsspq %rdi\n"                                                                 \
    "1:\n"                                                                              \
    "2:\n"
#else
#define IL_SHSTK_POP_PARENT ""
#endif
/* %rsi, %rdi, %rcx, %rdx: scratch, none an argument of vfork; %rax keeps
 * vfork's result throughout (the flags of its test live to the end). The
 * pop leaves %rsp 16-byte aligned, as a call wants. */
__asm__(".text\n"
        ".globl vfork\n"
        ".type vfork, @function\n"
        ".p2align 4\n"
        "vfork:\n" IL_ENTRY_MARK
        "    popq %rsi\n"
        "    movq il_vfork_return@gottpoff(%rip), %rcx\n"
        "    movq %rsi, %fs:(%rcx)\n"
        "    callq il_close_way_vforked\n"
        "    callq *il_vfork_next(%rip)\n"
        "    movq il_vfork_return@gottpoff(%rip), %rcx\n"
        "    movq il_vfork_mark@gottpoff(%rip), %rdx\n"
        "    xorl %esi, %esi\n"
        "    testl %eax, %eax\n"
        "    sete %sil\n"
        "    movl %esi, %fs:(%rdx)\n" IL_SHSTK_POP_PARENT
        "    jmpq *%fs:(%rcx)\n"
        ".size vfork, .-vfork\n");
#elif defined(__aarch64__)
/* x9-x12 and x16: scratch; x0 keeps vfork's result throughout; x30 is
 * free once saved in TLS (the call below overwrites it). */
__asm__(".text\n"
        ".globl vfork\n"
        ".type vfork, %function\n"
        ".p2align 4\n"
        "vfork:\n" IL_ENTRY_MARK
        "    mrs x9, tpidr_el0\n"
        "    adrp x10, :gottprel:il_vfork_return\n"
        "    ldr x10, [x10, #:gottprel_lo12:il_vfork_return]\n"
        "    str x30, [x9, x10]\n"
        "    bl il_close_way_vforked\n"
        "    adrp x16, il_vfork_next\n"
        "    ldr x16, [x16, :lo12:il_vfork_next]\n"
        "    blr x16\n"
        "    mrs x9, tpidr_el0\n"
        "    adrp x10, :gottprel:il_vfork_return\n"
        "    ldr x10, [x10, #:gottprel_lo12:il_vfork_return]\n"
        "    ldr x30, [x9, x10]\n"
        "    adrp x11, :gottprel:il_vfork_mark\n"
        "    ldr x11, [x11, #:gottprel_lo12:il_vfork_mark]\n"
        "    cmp w0, #0\n"
        "    cset w12, eq\n"
        "    str w12, [x9, x11]\n"
        "    ret\n"
        ".size vfork, .-vfork\n");
#else
#error "the vfork wrapper: x86-64 and aarch64 only"
#endif
