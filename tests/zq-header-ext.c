/* zq-header-ext: look at and edit the header extensions of a qcow2 v3
 * image, for tests.  Deliberately independent of lib/.
 *
 *   zq-header-ext list IMG                   magic, offset, length per line
 *   zq-header-ext area IMG                   hex of the whole extension
 *                                            area, end marker included
 *   zq-header-ext dump IMG MAGIC             hex of one extension's data
 *   zq-header-ext add IMG MAGIC HEX          insert an extension before
 *                                            the end marker
 *   zq-header-ext add-feature IMG TYPE BIT NAME
 *                                            add an entry to the feature
 *                                            name table (TYPE 0 incompatible,
 *                                            1 compatible, 2 autoclear)
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FEATURE_TABLE_MAGIC 0x6803f857u
#define MAX_EXTS 64

struct ext {
  uint32_t magic;
  uint32_t length;
  size_t offset;                /* of the data, in the file */
  unsigned char *data;
};

static const char *img_name;
static unsigned char *cluster;  /* the first cluster of the image */
static size_t cluster_size;
static uint32_t header_length;
static uint64_t backing_offset;
static struct ext exts[MAX_EXTS];
static size_t nr_exts;
static size_t area_end;         /* just after the end marker */

static void __attribute__ ((noreturn))
die (const char *msg)
{
  fprintf (stderr, "zq-header-ext: %s: %s\n", img_name, msg);
  exit (1);
}

static uint32_t
be32 (const unsigned char *p)
{
  return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 |
         (uint32_t) p[2] << 8 | p[3];
}

static uint64_t
be64 (const unsigned char *p)
{
  return (uint64_t) be32 (p) << 32 | be32 (p + 4);
}

static void
put_be32 (unsigned char *p, uint32_t v)
{
  p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

static size_t
pad8 (size_t n)
{
  return (n + 7) & ~(size_t) 7;
}

static void
load (int fd)
{
  unsigned char hdr[104];
  uint32_t cluster_bits;
  size_t pos;

  if (pread (fd, hdr, sizeof hdr, 0) != (ssize_t) sizeof hdr)
    die ("cannot read the header");
  if (be32 (hdr) != 0x514649fbu)
    die ("not a qcow2 image");
  if (be32 (hdr + 4) != 3)
    die ("not a version 3 image");
  cluster_bits = be32 (hdr + 20);
  if (cluster_bits < 9 || cluster_bits > 21)
    die ("bad cluster_bits");
  cluster_size = (size_t) 1 << cluster_bits;
  backing_offset = be64 (hdr + 8);
  header_length = be32 (hdr + 100);
  if (header_length < 104 || header_length >= cluster_size)
    die ("bad header_length");

  cluster = calloc (1, cluster_size);
  if (cluster == NULL)
    die ("out of memory");
  if (pread (fd, cluster, cluster_size, 0) < (ssize_t) header_length)
    die ("cannot read the first cluster");

  pos = header_length;
  for (;;) {
    uint32_t magic, length;
    if (pos + 8 > cluster_size)
      die ("no end marker in the first cluster");
    magic = be32 (cluster + pos);
    length = be32 (cluster + pos + 4);
    if (magic == 0) {
      area_end = pos + 8;
      break;
    }
    if (pos + 8 + pad8 (length) > cluster_size)
      die ("extension runs past the first cluster");
    if (nr_exts == MAX_EXTS)
      die ("too many extensions");
    exts[nr_exts].magic = magic;
    exts[nr_exts].length = length;
    exts[nr_exts].offset = pos + 8;
    exts[nr_exts].data = cluster + pos + 8;
    nr_exts++;
    pos += 8 + pad8 (length);
  }
}

/* Rewrite the extension area from the exts array. */
static void
store (int fd)
{
  unsigned char *area = calloc (1, cluster_size);
  size_t pos = 0, i;

  if (area == NULL)
    die ("out of memory");
  for (i = 0; i < nr_exts; i++) {
    if (header_length + pos + 8 + pad8 (exts[i].length) + 8 > cluster_size)
      die ("the extensions no longer fit in the first cluster");
    put_be32 (area + pos, exts[i].magic);
    put_be32 (area + pos + 4, exts[i].length);
    memcpy (area + pos + 8, exts[i].data, exts[i].length);
    pos += 8 + pad8 (exts[i].length);
  }
  pos += 8;                     /* end marker, already zero */
  if (backing_offset != 0 && backing_offset < header_length + pos)
    die ("the extensions would overwrite the backing file name");
  if (pwrite (fd, area, pos, header_length) != (ssize_t) pos)
    die ("cannot write the extension area");
  if (fsync (fd) == -1)
    die ("fsync failed");
  free (area);
}

static void
print_hex (const unsigned char *p, size_t n)
{
  size_t i;
  for (i = 0; i < n; i++)
    printf ("%02x", p[i]);
  printf ("\n");
}

static unsigned char *
parse_hex (const char *s, size_t *len)
{
  size_t n = strlen (s), i;
  unsigned char *out;

  if (n % 2)
    die ("hex payload has an odd number of digits");
  out = malloc (n / 2 + 1);
  if (out == NULL)
    die ("out of memory");
  for (i = 0; i < n / 2; i++) {
    unsigned v;
    if (sscanf (s + 2 * i, "%2x", &v) != 1)
      die ("bad hex payload");
    out[i] = v;
  }
  *len = n / 2;
  return out;
}

static uint32_t
parse_u32 (const char *s)
{
  char *end;
  unsigned long v;
  errno = 0;
  v = strtoul (s, &end, 0);
  if (errno || end == s || *end || v > UINT32_MAX)
    die ("bad number");
  return v;
}

int
main (int argc, char *argv[])
{
  const char *cmd;
  int fd;
  size_t i;

  if (argc < 3) {
    fprintf (stderr, "usage: zq-header-ext list|area|dump|add|add-feature "
             "IMG ...\n");
    return 2;
  }
  cmd = argv[1];
  img_name = argv[2];
  fd = open (img_name, strcmp (cmd, "add") == 0 ||
                       strcmp (cmd, "add-feature") == 0 ? O_RDWR : O_RDONLY);
  if (fd == -1)
    die (strerror (errno));
  load (fd);

  if (strcmp (cmd, "list") == 0 && argc == 3) {
    for (i = 0; i < nr_exts; i++)
      printf ("0x%08" PRIx32 " %zu %" PRIu32 "\n",
              exts[i].magic, exts[i].offset - 8, exts[i].length);
  }
  else if (strcmp (cmd, "area") == 0 && argc == 3) {
    print_hex (cluster + header_length, area_end - header_length);
  }
  else if (strcmp (cmd, "dump") == 0 && argc == 4) {
    uint32_t magic = parse_u32 (argv[3]);
    for (i = 0; i < nr_exts; i++)
      if (exts[i].magic == magic)
        break;
    if (i == nr_exts)
      die ("no such extension");
    print_hex (exts[i].data, exts[i].length);
  }
  else if (strcmp (cmd, "add") == 0 && argc == 5) {
    size_t len;
    if (nr_exts == MAX_EXTS)
      die ("too many extensions");
    exts[nr_exts].magic = parse_u32 (argv[3]);
    exts[nr_exts].data = parse_hex (argv[4], &len);
    exts[nr_exts].length = len;
    nr_exts++;
    store (fd);
  }
  else if (strcmp (cmd, "add-feature") == 0 && argc == 6) {
    uint32_t type = parse_u32 (argv[3]), bit = parse_u32 (argv[4]);
    unsigned char *table, *entry;
    size_t old_len = 0;

    if (type > 2 || bit > 63 || strlen (argv[5]) > 46)
      die ("bad feature type, bit or name");
    for (i = 0; i < nr_exts; i++)
      if (exts[i].magic == FEATURE_TABLE_MAGIC)
        break;
    if (i == nr_exts) {
      if (nr_exts == MAX_EXTS)
        die ("too many extensions");
      exts[nr_exts].magic = FEATURE_TABLE_MAGIC;
      exts[nr_exts].length = 0;
      exts[nr_exts].data = NULL;
      nr_exts++;
    }
    old_len = exts[i].length;
    table = calloc (1, old_len + 48);
    if (table == NULL)
      die ("out of memory");
    if (old_len)
      memcpy (table, exts[i].data, old_len);
    entry = table + old_len;
    entry[0] = type;
    entry[1] = bit;
    memcpy (entry + 2, argv[5], strlen (argv[5]));
    exts[i].data = table;
    exts[i].length = old_len + 48;
    store (fd);
  }
  else {
    fprintf (stderr, "zq-header-ext: bad command or arguments\n");
    return 2;
  }

  if (close (fd) == -1)
    die ("close failed");
  return 0;
}
