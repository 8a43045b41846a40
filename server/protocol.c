/* Option haggling: fixed newstyle negotiation, from the greeting to
 * NBD_OPT_GO or NBD_OPT_EXPORT_NAME.
 *
 * There is one export.  It answers to its name (-e) and to the empty name,
 * which the protocol reserves for "the default export".  There is no TLS.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "connection.h"
#include "meta-context.h"
#include "nbd-protocol.h"
#include "server.h"
#include "wire.h"

/* The longest option payload read; longer ones are skipped and refused.
 * A metadata context query fits many times over.
 */
#define OPTION_DATA_MAX 65536

struct option {
  uint32_t code;
  uint32_t len;
  uint8_t *data;
};

static int
send_option_reply (struct connection *conn, const struct option *opt,
                   uint32_t type, const void *head, size_t head_len,
                   const void *data, size_t data_len)
{
  uint8_t header[20];
  struct iovec iov[3] = {
    { .iov_base = header, .iov_len = sizeof header },
    { .iov_base = (void *) head, .iov_len = head_len },
    { .iov_base = (void *) data, .iov_len = data_len },
  };

  put_be64 (header, NBD_REP_MAGIC);
  put_be32 (header + 8, opt->code);
  put_be32 (header + 12, type);
  put_be32 (header + 16, head_len + data_len);
  return send_all (conn->fd, iov, 3);
}

static int
send_ack (struct connection *conn, const struct option *opt)
{
  return send_option_reply (conn, opt, NBD_REP_ACK, NULL, 0, NULL, 0);
}

/* An error reply, with a sentence for the client's user. */
static int
send_refusal (struct connection *conn, const struct option *opt,
              uint32_t type, const char *why)
{
  server_debug ("connection %d: option %u refused: %s", conn->fd,
                opt->code, why);
  return send_option_reply (conn, opt, type, NULL, 0, why, strlen (why));
}

static bool
export_name_matches (const uint8_t *name, uint32_t len)
{
  return len == 0 ||
    (len == strlen (export.name) && memcmp (name, export.name, len) == 0);
}

/* Transmission flags for this connection: data commands only on a
 * writable export, and "don't fragment" only with structured replies
 * (a READ reply is always one chunk anyway).
 */
static uint16_t
transmission_flags (const struct connection *conn)
{
  uint16_t eflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH |
                    NBD_FLAG_SEND_FUA | NBD_FLAG_CAN_MULTI_CONN;

  if (export.readonly)
    eflags |= NBD_FLAG_READ_ONLY;
  else
    eflags |= NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
              NBD_FLAG_SEND_FAST_ZERO;
  if (conn->structured_replies)
    eflags |= NBD_FLAG_SEND_DF;
  return eflags;
}

/* NBD_OPT_EXPORT_NAME: no way to refuse but to hang up. */
static int
opt_export_name (struct connection *conn, const struct option *opt)
{
  uint8_t reply[10 + 124] = { 0 };

  if (!export_name_matches (opt->data, opt->len)) {
    server_debug ("connection %d: NBD_OPT_EXPORT_NAME for an unknown "
                  "export", conn->fd);
    return -1;
  }
  conn->eflags = transmission_flags (conn);
  put_be64 (reply, export.size);
  put_be16 (reply + 8, conn->eflags);
  return send_all (conn->fd, &(struct iovec) {
      .iov_base = reply,
      .iov_len = conn->no_zeroes ? 10 : sizeof reply }, 1);
}

static int
opt_list (struct connection *conn, const struct option *opt)
{
  uint8_t head[4];
  size_t len = strlen (export.name);

  if (opt->len != 0)
    return send_refusal (conn, opt, NBD_REP_ERR_INVALID,
                         "NBD_OPT_LIST takes no data");
  put_be32 (head, len);
  if (send_option_reply (conn, opt, NBD_REP_SERVER, head, sizeof head,
                         export.name, len) == -1)
    return -1;
  return send_ack (conn, opt);
}

static int
send_info (struct connection *conn, const struct option *opt,
           uint16_t info, const void *data, size_t len)
{
  uint8_t head[2];

  put_be16 (head, info);
  return send_option_reply (conn, opt, NBD_REP_INFO, head, sizeof head,
                            data, len);
}

/* NBD_OPT_INFO and NBD_OPT_GO.  Returns 1 when GO succeeded. */
static int
opt_info_go (struct connection *conn, const struct option *opt)
{
  uint8_t export_info[10], block_size[12];
  bool want_name = false, want_description = false;
  uint32_t name_len, i;
  uint16_t nr_infos;

  if (opt->len < 6 || (name_len = get_be32 (opt->data)) > opt->len - 6)
    goto invalid;
  nr_infos = get_be16 (opt->data + 4 + name_len);
  if (opt->len != 6 + name_len + 2 * (uint32_t) nr_infos)
    goto invalid;
  if (!export_name_matches (opt->data + 4, name_len))
    return send_refusal (conn, opt, NBD_REP_ERR_UNKNOWN,
                         "no export of that name");
  for (i = 0; i < nr_infos; i++) {
    switch (get_be16 (opt->data + 6 + name_len + 2 * i)) {
    case NBD_INFO_NAME: want_name = true; break;
    case NBD_INFO_DESCRIPTION: want_description = true; break;
    default: break;             /* EXPORT and BLOCK_SIZE go anyway */
    }
  }

  conn->eflags = transmission_flags (conn);
  put_be64 (export_info, export.size);
  put_be16 (export_info + 8, conn->eflags);
  if (send_info (conn, opt, NBD_INFO_EXPORT, export_info,
                 sizeof export_info) == -1)
    return -1;
  if (want_name &&
      send_info (conn, opt, NBD_INFO_NAME, export.name,
                 strlen (export.name)) == -1)
    return -1;
  if (want_description && export.description[0] != '\0' &&
      send_info (conn, opt, NBD_INFO_DESCRIPTION, export.description,
                 strlen (export.description)) == -1)
    return -1;
  /* Sent unasked too: the protocol allows it, and a zoned export's
   * 512-byte minimum matters to every client.
   */
  put_be32 (block_size, export.min_block);
  put_be32 (block_size + 4, export.preferred_block);
  put_be32 (block_size + 8, export.max_block);
  if (send_info (conn, opt, NBD_INFO_BLOCK_SIZE, block_size,
                 sizeof block_size) == -1)
    return -1;
  if (send_ack (conn, opt) == -1)
    return -1;
  return opt->code == NBD_OPT_GO ? 1 : 0;

 invalid:
  return send_refusal (conn, opt, NBD_REP_ERR_INVALID,
                       "malformed NBD_OPT_INFO or NBD_OPT_GO");
}

static int
opt_structured_reply (struct connection *conn, const struct option *opt)
{
  if (opt->len != 0)
    return send_refusal (conn, opt, NBD_REP_ERR_INVALID,
                         "NBD_OPT_STRUCTURED_REPLY takes no data");
  conn->structured_replies = true;
  return send_ack (conn, opt);
}

/* NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT.  The data is an
 * export name and a list of queries, all checked before any reply goes
 * out.
 */
static int
opt_meta_context (struct connection *conn, const struct option *opt)
{
  bool list = opt->code == NBD_OPT_LIST_META_CONTEXT;
  unsigned selected = 0;
  uint32_t name_len, nr_queries, pos, i;
  uint8_t head[4];
  int c;

  if (!list)
    conn->meta_contexts = 0;    /* a new SET replaces the old selection,
                                   even if it fails */
  if (!conn->structured_replies)
    return send_refusal (conn, opt, NBD_REP_ERR_INVALID,
                         "metadata contexts need structured replies "
                         "(NBD_OPT_STRUCTURED_REPLY) first");

  if (opt->len < 8 || (name_len = get_be32 (opt->data)) > opt->len - 8)
    goto invalid;
  nr_queries = get_be32 (opt->data + 4 + name_len);
  pos = 8 + name_len;
  for (i = 0; i < nr_queries; i++) {
    uint32_t query_len;

    if (opt->len - pos < 4)
      goto invalid;
    query_len = get_be32 (opt->data + pos);
    if (query_len > opt->len - pos - 4)
      goto invalid;
    selected |= meta_context_query (opt->data + pos + 4, query_len,
                                   list);
    pos += 4 + query_len;
  }
  if (pos != opt->len)
    goto invalid;
  if (!export_name_matches (opt->data + 4, name_len))
    return send_refusal (conn, opt, NBD_REP_ERR_UNKNOWN,
                         "no export of that name");

  if (list && nr_queries == 0)
    selected = meta_contexts_published ();

  /* Listed contexts carry id 0, as the protocol asks. */
  for (c = 0; c < NR_META_CONTEXTS; c++) {
    const char *name = meta_context_name (c);

    if (!(selected & CTX_BIT (c)))
      continue;
    put_be32 (head, list ? 0 : meta_context_id (c));
    if (send_option_reply (conn, opt, NBD_REP_META_CONTEXT, head,
                           sizeof head, name, strlen (name)) == -1)
      return -1;
    if (!list)
      server_debug ("connection %d: metadata context %s selected, id %u",
                    conn->fd, name, (unsigned) meta_context_id (c));
  }
  if (!list)
    conn->meta_contexts = selected;
  return send_ack (conn, opt);

 invalid:
  return send_refusal (conn, opt, NBD_REP_ERR_INVALID,
                       "malformed metadata context request");
}

/* Reads one option's header and data.  Returns 0, 1 when the data was too
 * long and has been skipped, or -1 when the connection is lost or the
 * client broke the protocol.
 */
static int
read_option (struct connection *conn, struct option *opt)
{
  uint8_t header[16];

  if (recv_all (conn->fd, header, sizeof header) == -1)
    return -1;
  if (get_be64 (header) != NBD_IHAVEOPT) {
    server_debug ("connection %d: bad option magic, hanging up", conn->fd);
    return -1;
  }
  opt->code = get_be32 (header + 8);
  opt->len = get_be32 (header + 12);
  if (opt->len > OPTION_DATA_MAX)
    return recv_discard (conn->fd, opt->len) == -1 ? -1 : 1;
  return recv_all (conn->fd, opt->data, opt->len);
}

static int
greet (struct connection *conn)
{
  uint8_t greeting[18], client_flags[4];
  uint32_t flags;

  put_be64 (greeting, NBD_MAGIC);
  put_be64 (greeting + 8, NBD_IHAVEOPT);
  put_be16 (greeting + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
  if (send_all (conn->fd, &(struct iovec) {
        .iov_base = greeting, .iov_len = sizeof greeting }, 1) == -1 ||
      recv_all (conn->fd, client_flags, sizeof client_flags) == -1)
    return -1;

  flags = get_be32 (client_flags);
  if (flags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
    server_debug ("connection %d: unknown client flags 0x%x, hanging up",
                  conn->fd, flags);
    return -1;
  }
  conn->no_zeroes = (flags & NBD_FLAG_C_NO_ZEROES) != 0;
  return 0;
}

int
negotiate (struct connection *conn)
{
  struct option opt;
  int r;

  if (greet (conn) == -1)
    return -1;

  opt.data = malloc (OPTION_DATA_MAX);
  if (opt.data == NULL) {
    server_error ("connection: %m");
    return -1;
  }
  for (;;) {
    r = read_option (conn, &opt);
    if (r == -1)
      break;
    if (r == 1) {
      r = send_refusal (conn, &opt, NBD_REP_ERR_TOO_BIG,
                        "option data too long");
      if (r == -1)
        break;
      continue;
    }

    switch (opt.code) {
    case NBD_OPT_EXPORT_NAME:
      r = opt_export_name (conn, &opt);
      free (opt.data);
      return r;
    case NBD_OPT_ABORT:
      send_ack (conn, &opt);
      r = -1;
      break;
    case NBD_OPT_LIST:
      r = opt_list (conn, &opt);
      break;
    case NBD_OPT_INFO:
    case NBD_OPT_GO:
      r = opt_info_go (conn, &opt);
      if (r == 1) {
        free (opt.data);
        return 0;
      }
      break;
    case NBD_OPT_STRUCTURED_REPLY:
      r = opt_structured_reply (conn, &opt);
      break;
    case NBD_OPT_LIST_META_CONTEXT:
    case NBD_OPT_SET_META_CONTEXT:
      r = opt_meta_context (conn, &opt);
      break;
    case NBD_OPT_STARTTLS:
      r = send_refusal (conn, &opt, NBD_REP_ERR_UNSUP,
                        PROGRAM_NAME " does not support TLS");
      break;
    default:
      r = send_refusal (conn, &opt, NBD_REP_ERR_UNSUP, "unknown option");
      break;
    }
    if (r == -1)
      break;
  }
  free (opt.data);
  return -1;
}
