/*
 * Streaming HTTP/1.1 response reader. It keeps only what the load generator
 * needs (status, framing, whether the server will close) and skips bodies
 * without copying them, so a response costs a few hundred byte comparisons.
 */
#ifndef LOADGEN_RESP_H
#define LOADGEN_RESP_H

#include <stddef.h>
#include <stdint.h>

#define RESP_LINE_MAX 8192

enum resp_result {
	RESP_MORE = 0,  /* need more bytes */
	RESP_DONE = 1,  /* one full response consumed */
	RESP_ERROR = -1 /* malformed or too large */
};

struct resp {
	int state;
	int status;
	int head_request;   /* response to HEAD: no body whatever the headers say */
	int chunked;
	int server_closes;  /* "Connection: close" or HTTP/1.0 without keep-alive */
	int until_eof;      /* no length given: the body ends when the server closes */
	int64_t content_length;
	uint64_t left;      /* body or chunk bytes still to skip */
	size_t line_len;
	char line[RESP_LINE_MAX];
};

void resp_reset(struct resp *r, int head_request);
/* Consumes up to len bytes; *used tells how many were taken. */
enum resp_result resp_feed(struct resp *r, const char *buf, size_t len, size_t *used);
/* The peer closed: completes an until-EOF body, anything else is an error. */
enum resp_result resp_eof(struct resp *r);

#endif
