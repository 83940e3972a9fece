# blobd build. `make` builds build/blobd; `make test` installs what is
# missing, builds the normal and the sanitizer build and runs every test;
# `make run` installs, builds and starts blobd on 127.0.0.1:8080.

CC      ?= cc
BUILD   ?= build
CSTD    := -std=c11 -D_GNU_SOURCE
# -Wformat-truncation is off: paths are built with snprintf into PATH_MAX
# buffers from components whose lengths the store bounds, and gcc 12
# cannot see those bounds.
WARN    := -Wall -Wextra -Wstrict-prototypes -Wvla -Wformat=2 \
           -Wshadow -Wpointer-arith -Wmissing-prototypes -Werror \
           -Wno-format-truncation
OPT     ?= -O2 -g
SAN     ?=
INC     := -I. -Iblobd -Iimgproc -Iquota -Ichatapi
CFLAGS  += $(CSTD) $(WARN) $(OPT) $(SAN) $(INC) -MMD -MP -pthread
LIBS    := -lmicrohttpd -lrocksdb -ljansson -lmagic -llcms2 -lturbojpeg \
           -ljpeg -lpng16 -lz -lcrypto -lm -pthread
LDFLAGS += $(SAN)

IMGPROC_SRC := $(wildcard imgproc/*.c)
QUOTA_SRC   := $(wildcard quota/*.c)
CHATAPI_SRC := $(wildcard chatapi/*.c)
BLOBD_SRC   := $(filter-out blobd/main.c,$(wildcard blobd/*.c))

objs = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

IMGPROC_OBJ := $(call objs,$(IMGPROC_SRC))
QUOTA_OBJ   := $(call objs,$(QUOTA_SRC))
CHATAPI_OBJ := $(call objs,$(CHATAPI_SRC))
BLOBD_OBJ   := $(call objs,$(BLOBD_SRC))
ALL_OBJ     := $(BLOBD_OBJ) $(CHATAPI_OBJ) $(QUOTA_OBJ) $(IMGPROC_OBJ)

UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

.PHONY: all run test check asan deps clean unit-bin

all: $(BUILD)/blobd

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libblobd.a: $(ALL_OBJ)
	@rm -f $@
	@echo "  AR      $@"
	@ar rcs $@ $^

$(BUILD)/blobd: $(BUILD)/obj/blobd/main.o $(BUILD)/libblobd.a
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libblobd.a
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(BUILD)/libblobd.a $(LIBS) -lcmocka

unit-bin: $(UNIT_BIN)

# Installs the Debian packages that the build, the tests and the benchmarks
# need, when any is missing (needs root).
deps:
	@sh tools/install-deps.sh

run: deps all
	@sh tools/run.sh

# The one test command: README gives it, .ci/run calls it.
test: deps
	@bash tests/run-all.sh

check: test

asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	    all unit-bin

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
