// SPDX-License-Identifier: GPL-2.0
/* The C helpers of blk, linked into the sample module too. */
#include "../helpers.c"
