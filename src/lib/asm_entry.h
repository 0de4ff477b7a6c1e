/* The first instruction of a function written in assembly (the syscall()
 * and vfork() wrappers): the landing mark that indirect branch tracking
 * wants where the build turns it on (x86-64 CET: endbr64; aarch64 BTI:
 * bti c), nothing elsewhere. And IL_STR, a macro's value as a string, for
 * constants in the assembly text. */
#ifndef IL_ASM_ENTRY_H
#define IL_ASM_ENTRY_H

#define IL_STR_(x) #x
#define IL_STR(x) IL_STR_(x)

#if defined(__x86_64__) && defined(__CET__)
#define IL_ENTRY_MARK "    endbr64\n"
#elif defined(__aarch64__) && defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
#define IL_ENTRY_MARK "    bti c\n"
#else
#define IL_ENTRY_MARK ""
#endif

#endif
