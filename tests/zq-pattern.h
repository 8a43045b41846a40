/* The data pattern the zone tests write and check.
 *
 * Every byte is a function of its absolute offset in the export and of a
 * tag, so a byte read back proves where it was written and by which
 * generation of writes: stale data left behind by a reset (another tag),
 * data written at the wrong offset and zeroes all fail the comparison.
 */
#ifndef ZQ_PATTERN_H
#define ZQ_PATTERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline uint64_t
zq_pattern_word (uint64_t word_index, uint32_t tag)
{
  uint64_t z = word_index ^ ((uint64_t) tag << 44) ^ UINT64_C (0x6a09e667f3bcc909);

  z += UINT64_C (0x9e3779b97f4a7c15);
  z = (z ^ (z >> 30)) * UINT64_C (0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C (0x94d049bb133111eb);
  return z ^ (z >> 31);
}

static inline uint8_t
zq_pattern_byte (uint64_t offset, uint32_t tag)
{
  return zq_pattern_word (offset >> 3, tag) >> ((offset & 7) * 8);
}

/* Fills buf with the pattern of the bytes [offset, offset + len). */
static inline void
zq_pattern_fill (unsigned char *buf, uint64_t offset, size_t len,
                 uint32_t tag)
{
  size_t i = 0;

  while (i < len) {
    uint64_t word = zq_pattern_word ((offset + i) >> 3, tag);
    unsigned byte = (offset + i) & 7;

    for (; byte < 8 && i < len; byte++, i++)
      buf[i] = word >> (byte * 8);
  }
}

/* Index of the first byte of buf that differs from the pattern, or len. */
static inline size_t
zq_pattern_mismatch (const unsigned char *buf, uint64_t offset, size_t len,
                     uint32_t tag)
{
  size_t i = 0;

  while (i < len) {
    uint64_t word = zq_pattern_word ((offset + i) >> 3, tag);
    unsigned byte = (offset + i) & 7;

    for (; byte < 8 && i < len; byte++, i++)
      if (buf[i] != (unsigned char) (word >> (byte * 8)))
        return i;
  }
  return len;
}

/* Index of the first non-zero byte of buf, or len. */
static inline size_t
zq_zero_mismatch (const unsigned char *buf, size_t len)
{
  size_t i;

  for (i = 0; i < len; i++)
    if (buf[i] != 0)
      return i;
  return len;
}

#endif /* ZQ_PATTERN_H */
