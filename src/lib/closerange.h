/* Closing ranges of fds around the library's own (ownfd.h): closefrom(3)
 * or close_range(3, ~0U, 0) in the host must not take the segment's fd,
 * or every program the host execs afterwards would count apart. */
#ifndef IL_CLOSERANGE_H
#define IL_CLOSERANGE_H

/* closer(lo, hi, flags) over [first, last] minus the library's own fds:
 * one call when none is in the range (the usual case), else one per piece.
 * Returns 0, or -1 with errno from the first piece that failed. */
int il_close_range_split(unsigned first, unsigned last, int flags,
                         int (*closer)(unsigned, unsigned, int));

/* closefrom(lowfd), lowfd >= 0, around the library's own fds. */
void il_closefrom_split(int lowfd);

#endif
