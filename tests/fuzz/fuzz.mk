# Builds the libFuzzer harnesses with clang, ASan and UBSan, apart from the
# autotools build (which stays gcc's): every engine and server source is
# compiled again into OUT with the sanitizers and libFuzzer's coverage.
# scripts/fuzz and tests/test-fuzz.sh run it as
#
#   make -f tests/fuzz/fuzz.mk top_srcdir=SRC top_builddir=BUILD OUT=DIR
#
# top_builddir is a configured tree: its config.h is used as it is.

CC = clang
SANITIZE = -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS = -g -O1 -fno-omit-frame-pointer -pthread $(SANITIZE)
# A write ahead of a write pointer is refused at once, not after a second.
FUZZ_CPPFLAGS = -DAHEAD_WAIT_SECONDS=0 -I$(top_builddir) -I$(top_srcdir)/lib \
	-I$(top_srcdir)/server -I$(top_srcdir)/common -I$(top_srcdir)/tests/fuzz
FUZZ_LIBS = -lz -lzstd -pthread

# New sources join by themselves; main.c is the server's command line and
# accept loop, which the NBD harness replaces.
LIB_SRCS = $(wildcard $(top_srcdir)/lib/*.c)
SERVER_SRCS = $(filter-out %/main.c,$(wildcard $(top_srcdir)/server/*.c))
# What the server shares with the other front ends (options, log lines).
FRONT_SRCS = $(wildcard $(top_srcdir)/common/*.c)
LIB_OBJS = $(patsubst $(top_srcdir)/lib/%.c,$(OUT)/lib/%.o,$(LIB_SRCS))
SERVER_OBJS = $(patsubst $(top_srcdir)/server/%.c,$(OUT)/server/%.o,\
	$(SERVER_SRCS))
FRONT_OBJS = $(patsubst $(top_srcdir)/common/%.c,$(OUT)/common/%.o,\
	$(FRONT_SRCS))
COMMON_OBJ = $(OUT)/fuzz/fuzz-common.o

FUZZERS = fuzz-image-ro fuzz-image-rw fuzz-nbd

all: $(addprefix $(OUT)/,$(FUZZERS))

$(OUT)/lib/%.o: $(top_srcdir)/lib/%.c $(top_srcdir)/tests/fuzz/fuzz.mk
	@mkdir -p $(@D)
	$(CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link \
	  -MMD -MP -c -o $@ $<

$(OUT)/server/%.o: $(top_srcdir)/server/%.c $(top_srcdir)/tests/fuzz/fuzz.mk
	@mkdir -p $(@D)
	$(CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link \
	  -MMD -MP -c -o $@ $<

$(OUT)/common/%.o: $(top_srcdir)/common/%.c $(top_srcdir)/tests/fuzz/fuzz.mk
	@mkdir -p $(@D)
	$(CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link \
	  -MMD -MP -c -o $@ $<

$(OUT)/fuzz/%.o: $(top_srcdir)/tests/fuzz/%.c $(top_srcdir)/tests/fuzz/fuzz.mk
	@mkdir -p $(@D)
	$(CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link \
	  -MMD -MP -c -o $@ $<

$(OUT)/fuzz-image-ro $(OUT)/fuzz-image-rw: $(OUT)/%: $(OUT)/fuzz/%.o \
		$(COMMON_OBJ) $(LIB_OBJS)
	$(CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(FUZZ_LIBS)

$(OUT)/fuzz-nbd: $(OUT)/fuzz/fuzz-nbd.o $(COMMON_OBJ) $(SERVER_OBJS) \
		$(FRONT_OBJS) $(LIB_OBJS)
	$(CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(FUZZ_LIBS)

-include $(wildcard $(OUT)/*/*.d)

.PHONY: all
