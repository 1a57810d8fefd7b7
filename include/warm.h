/*
 * warm.h - read whole datasets through a mount, so that the daemon's
 * disk cache holds their (encrypted) segments before going offline:
 * `marketfs --warm PATH...`.
 */
#ifndef MARKETFS_WARM_H
#define MARKETFS_WARM_H

/*
 * Read every regular file under each path (files or folders of a mounted
 * marketfs) with jobs threads, showing a progress bar on stderr when it
 * is a terminal.  Files that cannot be read are named on stderr with the
 * reason, and the others still read.  Returns 0 when every file read,
 * 1 when some did not, 2 for a path that does not exist.
 */
int warm_paths(char *const *paths, int npaths, int jobs);

#endif
