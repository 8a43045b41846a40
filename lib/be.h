/* Big-endian load and store.  qcow2 stores every number big-endian and
 * several header fields are not naturally aligned, so on-disk structures
 * are always (de)serialised byte by byte through these helpers.
 */
#ifndef ZQ_BE_H
#define ZQ_BE_H

#include <stdint.h>

static inline uint16_t
load_be16 (const void *p)
{
  const uint8_t *b = p;
  return (uint16_t) ((b[0] << 8) | b[1]);
}

static inline uint32_t
load_be32 (const void *p)
{
  const uint8_t *b = p;
  return ((uint32_t) b[0] << 24) | ((uint32_t) b[1] << 16) |
         ((uint32_t) b[2] << 8) | b[3];
}

static inline uint64_t
load_be64 (const void *p)
{
  const uint8_t *b = p;
  return ((uint64_t) load_be32 (b) << 32) | load_be32 (b + 4);
}

static inline void
store_be16 (void *p, uint16_t v)
{
  uint8_t *b = p;
  b[0] = v >> 8;
  b[1] = v;
}

static inline void
store_be32 (void *p, uint32_t v)
{
  uint8_t *b = p;
  b[0] = v >> 24;
  b[1] = v >> 16;
  b[2] = v >> 8;
  b[3] = v;
}

static inline void
store_be64 (void *p, uint64_t v)
{
  uint8_t *b = p;
  store_be32 (b, v >> 32);
  store_be32 (b + 4, (uint32_t) v);
}

#endif /* ZQ_BE_H */
