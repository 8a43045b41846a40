/* Per-thread state of the worker threads (scratch buffers, decompression
 * contexts): made on a thread's first use, kept for the thread's life and
 * destroyed when it exits, so no request allocates memory.
 */
#ifndef ZQ_THREAD_SLOT_H
#define ZQ_THREAD_SLOT_H

enum thread_slot {
  THREAD_SLOT_COW_BUFFER,       /* io-write.c */
  THREAD_SLOT_DECOMPRESSOR,     /* compress.c */
  NR_THREAD_SLOTS
};

/* The calling thread's object in `slot`, made by create() on first use
 * (and freed with destroy() when the thread exits).  NULL with errno set
 * if create() failed; it is tried again on the next call.
 */
void *thread_slot_get (enum thread_slot slot, void *(*create) (void),
                       void (*destroy) (void *));

#endif /* ZQ_THREAD_SLOT_H */
