#include "resp.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum {
	S_STATUS,
	S_HEADERS,
	S_BODY_LEN,
	S_CHUNK_SIZE,
	S_CHUNK_DATA,
	S_CHUNK_END,
	S_TRAILERS,
	S_BODY_EOF,
};

void resp_reset(struct resp *r, int head_request)
{
	r->state = S_STATUS;
	r->status = 0;
	r->head_request = head_request;
	r->chunked = 0;
	r->server_closes = 0;
	r->until_eof = 0;
	r->content_length = -1;
	r->left = 0;
	r->line_len = 0;
}

/* Case-insensitive "does this comma-separated header value list hold tok". */
static int value_has(const char *v, const char *tok)
{
	size_t n = strlen(tok);
	for (const char *p = v; *p; p++) {
		if (strncasecmp(p, tok, n) == 0 && (p == v || !isalnum((unsigned char)p[-1])) &&
		    !isalnum((unsigned char)p[n]))
			return 1;
	}
	return 0;
}

static int status_line(struct resp *r, const char *l)
{
	/* "HTTP/1.x NNN reason" */
	if (strncmp(l, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)l[7]) || l[8] != ' ')
		return -1;
	if (!isdigit((unsigned char)l[9]) || !isdigit((unsigned char)l[10]) ||
	    !isdigit((unsigned char)l[11]))
		return -1;
	r->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
	/* HTTP/1.0 closes unless it says keep-alive; a header may flip this. */
	r->server_closes = l[7] == '0';
	return 0;
}

static int header_line(struct resp *r, char *l)
{
	char *colon = strchr(l, ':');
	if (!colon)
		return -1;
	*colon = '\0';
	char *v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	if (strcasecmp(l, "content-length") == 0) {
		char *end;
		long long n = strtoll(v, &end, 10);
		if (end == v || n < 0)
			return -1;
		r->content_length = n;
	} else if (strcasecmp(l, "transfer-encoding") == 0) {
		r->chunked = value_has(v, "chunked");
	} else if (strcasecmp(l, "connection") == 0) {
		if (value_has(v, "close"))
			r->server_closes = 1;
		else if (value_has(v, "keep-alive"))
			r->server_closes = 0;
	}
	return 0;
}

/* Headers are complete: decide how the body is framed (RFC 9112 §6.3). */
static enum resp_result start_body(struct resp *r)
{
	if (r->status >= 100 && r->status < 200) {
		/* Interim response: the real one follows on the same stream. */
		int head = r->head_request;
		resp_reset(r, head);
		return RESP_MORE;
	}
	if (r->head_request || r->status == 204 || r->status == 304)
		return RESP_DONE;
	if (r->chunked) {
		r->state = S_CHUNK_SIZE;
		return RESP_MORE;
	}
	if (r->content_length >= 0) {
		r->left = (uint64_t)r->content_length;
		r->state = S_BODY_LEN;
		return r->left == 0 ? RESP_DONE : RESP_MORE;
	}
	r->until_eof = 1;
	r->server_closes = 1;
	r->state = S_BODY_EOF;
	return RESP_MORE;
}

static enum resp_result on_line(struct resp *r)
{
	char *l = r->line;
	l[r->line_len] = '\0';
	if (r->line_len > 0 && l[r->line_len - 1] == '\r')
		l[--r->line_len] = '\0';
	r->line_len = 0;

	switch (r->state) {
	case S_STATUS:
		if (status_line(r, l) < 0)
			return RESP_ERROR;
		r->state = S_HEADERS;
		return RESP_MORE;
	case S_HEADERS:
		if (l[0] == '\0')
			return start_body(r);
		return header_line(r, l) < 0 ? RESP_ERROR : RESP_MORE;
	case S_CHUNK_SIZE: {
		char *end;
		unsigned long long n = strtoull(l, &end, 16);
		if (end == l)
			return RESP_ERROR;
		if (n == 0) {
			r->state = S_TRAILERS;
			return RESP_MORE;
		}
		r->left = n;
		r->state = S_CHUNK_DATA;
		return RESP_MORE;
	}
	case S_CHUNK_END:
		if (l[0] != '\0')
			return RESP_ERROR;
		r->state = S_CHUNK_SIZE;
		return RESP_MORE;
	case S_TRAILERS:
		return l[0] == '\0' ? RESP_DONE : RESP_MORE;
	default:
		return RESP_ERROR;
	}
}

enum resp_result resp_feed(struct resp *r, const char *buf, size_t len, size_t *used)
{
	size_t i = 0;
	while (i < len) {
		if (r->state == S_BODY_LEN || r->state == S_CHUNK_DATA) {
			size_t take = len - i;
			if ((uint64_t)take > r->left)
				take = (size_t)r->left;
			r->left -= take;
			i += take;
			if (r->left > 0)
				continue;
			if (r->state == S_BODY_LEN) {
				*used = i;
				return RESP_DONE;
			}
			r->state = S_CHUNK_END;
			continue;
		}
		if (r->state == S_BODY_EOF) {
			i = len;
			break;
		}
		/* Line-oriented states: copy up to the next newline. */
		const char *nl = memchr(buf + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (buf + i)) : len - i;
		if (r->line_len + n >= RESP_LINE_MAX) {
			*used = i;
			return RESP_ERROR;
		}
		memcpy(r->line + r->line_len, buf + i, n);
		r->line_len += n;
		i += n;
		if (!nl)
			break;
		i++; /* the newline */
		enum resp_result res = on_line(r);
		if (res != RESP_MORE) {
			*used = i;
			return res;
		}
	}
	*used = i;
	return RESP_MORE;
}

enum resp_result resp_eof(struct resp *r)
{
	return r->state == S_BODY_EOF ? RESP_DONE : RESP_ERROR;
}
