//! Which function a request is for: `Host: {name}.{domain}` (path untouched)
//! or `/{name}/rest…` (the function sees `/rest…`). Pure: no I/O, no state.

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route<'a> {
    /// The function's name (not yet validated).
    pub function: &'a str,
    /// How the function was chosen.
    pub by: RouteBy<'a>,
}

/// How a route was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteBy<'a> {
    /// By host name; the path goes to the function as it is.
    Host,
    /// By the first path segment; the function sees `rest` (which starts
    /// with `/`), and `X-Forwarded-Prefix: /{name}`.
    Path {
        /// The path after `/{name}`, `/` when empty.
        rest: &'a str,
    },
}

/// Routes a request with `host` (the `Host` header or URI authority, possibly
/// with a port) and `path` (without the query) under `domain`.
pub fn route<'a>(domain: &str, host: Option<&'a str>, path: &'a str) -> Option<Route<'a>> {
    if let Some(function) = host.and_then(|h| function_of_host(domain, h)) {
        return Some(Route {
            function,
            by: RouteBy::Host,
        });
    }
    let trimmed = path.strip_prefix('/')?;
    let (function, rest) = match trimmed.find('/') {
        Some(i) => (&trimmed[..i], &trimmed[i..]),
        None => (trimmed, "/"),
    };
    if function.is_empty() {
        return None;
    }
    Some(Route {
        function,
        by: RouteBy::Path { rest },
    })
}

fn function_of_host<'a>(domain: &str, host: &'a str) -> Option<&'a str> {
    if domain.is_empty() {
        return None;
    }
    let host = strip_port(host);
    let label = host.strip_suffix(domain)?.strip_suffix('.')?;
    (!label.is_empty() && !label.contains('.')).then_some(label)
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // An IPv6 literal never names a function.
        return host;
    }
    host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_routes_strip_the_function_name() {
        let r = route("localhost", Some("127.0.0.1:8080"), "/hello/a/b").unwrap();
        assert_eq!(r.function, "hello");
        assert_eq!(r.by, RouteBy::Path { rest: "/a/b" });
        let r = route("localhost", None, "/hello").unwrap();
        assert_eq!(r.by, RouteBy::Path { rest: "/" });
        let r = route("localhost", None, "/hello/").unwrap();
        assert_eq!(r.by, RouteBy::Path { rest: "/" });
        assert!(route("localhost", None, "/").is_none());
        assert!(route("localhost", None, "").is_none());
    }

    #[test]
    fn host_routes_keep_the_path() {
        let r = route("localhost", Some("hello.localhost:8080"), "/x").unwrap();
        assert_eq!(r.function, "hello");
        assert_eq!(r.by, RouteBy::Host);
        let r = route("fn.example.com", Some("img.fn.example.com"), "/").unwrap();
        assert_eq!(r.function, "img");
        // Not under the domain, or more than one label: path routing.
        let r = route("fn.example.com", Some("a.b.fn.example.com"), "/f/x").unwrap();
        assert_eq!(r.function, "f");
        let r = route("localhost", Some("localhost:8080"), "/f").unwrap();
        assert_eq!(r.function, "f");
        let r = route("localhost", Some("evil-localhost"), "/f").unwrap();
        assert_eq!(r.function, "f");
        // Host routing can be turned off.
        let r = route("", Some("hello.localhost"), "/f").unwrap();
        assert_eq!(r.function, "f");
    }
}
