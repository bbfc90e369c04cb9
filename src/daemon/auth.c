/*
 * Who may call a route: with `auth_token` set, the API wants
 * `Authorization: Bearer TOKEN` and the admin page HTTP Basic credentials
 * with the token as password (any user name), the one way a browser can send
 * it when it opens a page. Tokens are compared in constant time.
 */
#include "http.h"

#include <string.h>
#include <strings.h>

/* Decodes standard base64 into out (NUL-terminated); -1 if malformed or too long. */
static int base64_decode(const char *in, char *out, size_t cap)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;
    for (; *in && *in != '='; in++) {
        const char *p = strchr(al, *in);
        if (!p)
            return -1;
        acc = (acc << 6) | (unsigned)(p - al);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n + 1 >= cap)
                return -1;
            out[n++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[n] = 0;
    return 0;
}

/* Constant time in the token's length: no early exit on a mismatch. */
static int token_equal(const char *tok, const char *h)
{
    size_t lt = strlen(tok), lh = strlen(h);
    unsigned diff = (unsigned)(lt ^ lh);
    for (size_t i = 0; i < lt; i++)
        diff |= (unsigned char)tok[i] ^ (unsigned char)(i < lh ? h[i] : 0);
    return diff == 0;
}

/* `Authorization: Bearer TOKEN`, or `Basic base64(user:TOKEN)` (any user)
 * from a browser. */
int authorized(struct MHD_Connection *c)
{
    const char *tok = S.cfg.auth_token;
    if (!tok[0])
        return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h)
        return 0;
    if (!strncasecmp(h, "Bearer ", 7)) /* the scheme is case-insensitive (RFC 9110) */
        return token_equal(tok, h + 7);
    if (!strncasecmp(h, "Basic ", 6)) {
        char cred[600];
        const char *colon;
        if (base64_decode(h + 6, cred, sizeof cred) || !(colon = strchr(cred, ':')))
            return 0;
        int ok = token_equal(tok, colon + 1);
        memset(cred, 0, sizeof cred);
        return ok;
    }
    return 0;
}

/* The admin page asks for HTTP Basic credentials, the one way a browser can
 * send the token when it opens a page; the API asks for a bearer token. */
answer send_401(struct MHD_Connection *c, req *r, int page)
{
    return send_error_header(c, r, 401, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                             page ? "Basic realm=\"rnnd\", charset=\"UTF-8\"" : "Bearer realm=\"rnnd\"",
                             page ? "the admin page needs the token: any user name, the token as password"
                                  : "missing or wrong bearer token");
}
