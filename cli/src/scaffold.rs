//! `floe new`: a function project from a template, in Rust, JavaScript or
//! Python, HTTP or event, that builds as it is with that language's SDK.
//!
//! The templates are embedded in the binary (`cli/templates/`). A project
//! depends on the SDKs by path: `--sdk DIR` names the `sdk/` folder of a floe
//! checkout; without it, the one this binary was built from is used when it
//! is still there.

use floe::registry::FunctionName;
use std::fmt;
use std::path::{Path, PathBuf};

/// A function's language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust, with the floe-sdk crate (built for wasm32-wasip2 with cargo).
    Rust,
    /// JavaScript, with floe-js (componentize-js).
    Js,
    /// Python, with floe-py (componentize-py).
    Python,
}

/// A function's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Answers HTTP requests (`wasi:http/incoming-handler`).
    Http,
    /// Takes a payload and returns bytes (`floe:function/event`).
    Event,
}

/// The WASI release an HTTP function is built for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Wasi {
    /// WASI 0.2 (`wasi:http/incoming-handler`): one request at a time per
    /// instance. Every language.
    #[default]
    P2,
    /// WASI 0.3 (`wasi:http/handler@0.3`, `floe:function/event@0.2.0`):
    /// many requests at once per instance. Rust and Python.
    P3,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Http => "HTTP",
            Kind::Event => "event",
        })
    }
}

/// Why a project could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name is not a function name.
    #[error("{0}")]
    Name(String),
    /// The target exists and is not an empty directory.
    #[error("{0} already exists and is not empty")]
    Exists(PathBuf),
    /// No SDK folder was named and none was found.
    #[error(
        "cannot find floe's SDKs: pass --sdk with the sdk/ folder of a floe checkout \
         (it holds rust/, js/ and python/)"
    )]
    NoSdk,
    /// The SDK folder lacks the language's SDK.
    #[error("{0} has no {1} SDK")]
    MissingSdk(PathBuf, &'static str),
    /// The WASI release is not offered for this language or kind.
    #[error(
        "--wasi p3 makes Rust and Python functions only (componentize-js cannot build \
         WASI 0.3 components yet)"
    )]
    NoP3,
    /// Writing a file failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
}

/// What to make.
#[derive(Clone, Debug)]
pub struct Request {
    /// The function's name.
    pub name: String,
    /// Its language.
    pub lang: Lang,
    /// Its kind.
    pub kind: Kind,
    /// The WASI release of an HTTP function.
    pub wasi: Wasi,
    /// The project's directory (default: `./NAME`).
    pub dir: Option<PathBuf>,
    /// The `sdk/` folder of a floe checkout.
    pub sdk: Option<PathBuf>,
}

/// What was made.
#[derive(Debug)]
pub struct Project {
    /// Its directory.
    pub dir: PathBuf,
    /// The files written.
    pub files: Vec<PathBuf>,
    /// How to build it, as the README says.
    pub build: String,
}

/// One file of a template: where it goes and its text.
struct File {
    path: &'static str,
    text: &'static str,
}

/// A language's template: its manifest, its source for each kind, and what
/// git should ignore.
struct Template {
    manifest: File,
    source: &'static str,
    http: &'static str,
    /// The WASI 0.3 HTTP source (Rust and Python).
    http_p3: Option<&'static str>,
    /// The WASI 0.3 event source (Rust and Python).
    event_p3: Option<&'static str>,
    event: &'static str,
    gitignore: &'static str,
}

fn template(lang: Lang) -> Template {
    // `templates/{dir}/`: the manifest, `http.{ext}`, `event.{ext}` and
    // `gitignore`.
    macro_rules! template {
        ($dir:literal, $manifest:literal, $source:literal, $ext:literal) => {
            Template {
                manifest: File {
                    path: $manifest,
                    text: include_str!(concat!("../templates/", $dir, "/", $manifest)),
                },
                source: $source,
                http: include_str!(concat!("../templates/", $dir, "/http.", $ext)),
                http_p3: None,
                event_p3: None,
                event: include_str!(concat!("../templates/", $dir, "/event.", $ext)),
                gitignore: include_str!(concat!("../templates/", $dir, "/gitignore")),
            }
        };
    }
    match lang {
        Lang::Rust => Template {
            http_p3: Some(include_str!("../templates/rust/http-p3.rs")),
            event_p3: Some(include_str!("../templates/rust/event-p3.rs")),
            ..template!("rust", "Cargo.toml", "src/lib.rs", "rs")
        },
        Lang::Js => template!("js", "package.json", "app.js", "js"),
        Lang::Python => Template {
            http_p3: Some(include_str!("../templates/python/http-p3.py")),
            event_p3: Some(include_str!("../templates/python/event-p3.py")),
            ..template!("python", "requirements.txt", "app.py", "py")
        },
    }
}

fn files(lang: Lang, kind: Kind, wasi: Wasi) -> Result<Vec<File>, ScaffoldError> {
    let template = template(lang);
    let source = match (kind, wasi) {
        (Kind::Http, Wasi::P2) => template.http,
        (Kind::Event, Wasi::P2) => template.event,
        (Kind::Http, Wasi::P3) => template.http_p3.ok_or(ScaffoldError::NoP3)?,
        (Kind::Event, Wasi::P3) => template.event_p3.ok_or(ScaffoldError::NoP3)?,
    };
    Ok(vec![
        template.manifest,
        File {
            path: template.source,
            text: source,
        },
        File {
            path: ".gitignore",
            text: template.gitignore,
        },
        File {
            path: "README.md",
            text: include_str!("../templates/README.md"),
        },
    ])
}

/// The README's words for a language and kind.
fn readme_values(name: &str, lang: Lang, kind: Kind, wasi: Wasi) -> [(&'static str, String); 6] {
    let wasi_flag = match wasi {
        Wasi::P2 => "",
        Wasi::P3 => " --wasi p3",
    };
    let (language, setup, build, artifact) = match lang {
        Lang::Rust => (
            "Rust",
            "rustup target add wasm32-wasip2".to_owned(),
            "cargo build --release --target wasm32-wasip2".to_owned(),
            format!(
                "target/wasm32-wasip2/release/{}.wasm",
                name.replace('-', "_")
            ),
        ),
        Lang::Js => (
            "JavaScript",
            "npm install".to_owned(),
            "npm run build".to_owned(),
            format!("{name}.wasm"),
        ),
        Lang::Python => (
            "Python",
            "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt".to_owned(),
            format!(".venv/bin/floe-py build{wasi_flag} app.py -o {name}.wasm"),
            format!("{name}.wasm"),
        ),
    };
    let call = match kind {
        Kind::Http => format!("curl http://127.0.0.1:8080/{name}/"),
        Kind::Event => format!("curl --data-binary 'some bytes' http://127.0.0.1:8080/{name}"),
    };
    let kind = match wasi {
        Wasi::P2 => kind.to_string(),
        Wasi::P3 => format!("WASI 0.3 {kind}"),
    };
    [
        ("language", language.to_owned()),
        ("kind", kind),
        ("setup", setup),
        ("build", build),
        ("artifact", artifact),
        ("call", call),
    ]
}

fn fill(text: &str, values: &[(&str, String)]) -> String {
    values.iter().fold(text.to_owned(), |text, (key, value)| {
        text.replace(&format!("{{{{{key}}}}}"), value)
    })
}

/// The SDK folder: the one named, or the one this binary was built beside.
fn sdk_dir(named: Option<&Path>) -> Result<PathBuf, ScaffoldError> {
    let dir = match named {
        Some(dir) => dir.to_owned(),
        None => {
            let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
            if !built.is_dir() {
                return Err(ScaffoldError::NoSdk);
            }
            built
        }
    };
    // Templates name it from wherever the project is: make it absolute.
    Ok(std::fs::canonicalize(&dir)
        .or_else(|_| std::path::absolute(&dir))
        .unwrap_or(dir))
}

/// Makes the project.
pub fn create(request: &Request) -> Result<Project, ScaffoldError> {
    let name = FunctionName::new(&request.name).map_err(|e| ScaffoldError::Name(e.to_string()))?;
    let name = name.as_str();
    let sdk = sdk_dir(request.sdk.as_deref())?;
    let (sub, what) = match request.lang {
        Lang::Rust => ("rust", "Rust"),
        Lang::Js => ("js", "JavaScript"),
        Lang::Python => ("python", "Python"),
    };
    if !sdk.join(sub).is_dir() {
        return Err(ScaffoldError::MissingSdk(sdk, what));
    }
    let dir = request.dir.clone().unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() && std::fs::read_dir(&dir).map_or(true, |mut d| d.next().is_some()) {
        return Err(ScaffoldError::Exists(dir));
    }
    let files = files(request.lang, request.kind, request.wasi)?;
    let mut values = vec![
        ("name", name.to_owned()),
        ("sdk", sdk.display().to_string()),
        (
            "sdk_features",
            match request.wasi {
                Wasi::P2 => String::new(),
                Wasi::P3 => r#", features = ["p3"]"#.to_owned(),
            },
        ),
    ];
    values.extend(readme_values(
        name,
        request.lang,
        request.kind,
        request.wasi,
    ));
    let mut written = Vec::new();
    for file in files {
        let path = dir.join(file.path);
        let write = |path: &Path| -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, fill(file.text, &values))
        };
        write(&path).map_err(|source| ScaffoldError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    let build = values
        .iter()
        .find(|(k, _)| *k == "build")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    Ok(Project {
        dir,
        files: written,
        build,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty scratch directory, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("floe-scaffold-{}-{tag}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("scratch directory");
            Self(dir)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn every_placeholder_is_filled() {
        let combinations = [Lang::Rust, Lang::Js, Lang::Python]
            .into_iter()
            .flat_map(|lang| [Kind::Http, Kind::Event].map(|kind| (lang, kind, Wasi::P2)))
            .chain(
                [Lang::Rust, Lang::Python]
                    .into_iter()
                    .flat_map(|lang| [Kind::Http, Kind::Event].map(|kind| (lang, kind, Wasi::P3))),
            );
        {
            for (lang, kind, wasi) in combinations {
                let dir = Scratch::new(&format!("{lang:?}-{kind:?}-{wasi:?}"));
                let request = Request {
                    name: "my-fn".into(),
                    lang,
                    kind,
                    wasi,
                    dir: Some(dir.path().join("p")),
                    sdk: Some(dir.path().to_owned()),
                };
                let project = create(&request).map_err(|e| e.to_string());
                // The temporary folder has no SDKs in it.
                assert!(
                    project.as_ref().is_err_and(|e| e.contains("has no")),
                    "{project:?}"
                );
                for sub in ["rust", "js", "python"] {
                    std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
                }
                let project = create(&request).expect("created");
                for file in &project.files {
                    let text = std::fs::read_to_string(file).expect("read");
                    assert!(!text.contains("{{"), "{}: {text}", file.display());
                    assert!(
                        text.contains("my-fn")
                            || file.ends_with(".gitignore")
                            || file.ends_with("requirements.txt"),
                        "{}",
                        file.display()
                    );
                }
            }
        }
    }

    #[test]
    fn refuses_bad_names_and_busy_directories() {
        let dir = Scratch::new("refusals");
        let request = |name: &str| Request {
            name: name.into(),
            lang: Lang::Js,
            kind: Kind::Http,
            wasi: Wasi::P2,
            dir: Some(dir.path().to_owned()),
            sdk: Some(dir.path().to_owned()),
        };
        assert!(matches!(
            create(&request("Bad_Name")),
            Err(ScaffoldError::Name(_))
        ));
        std::fs::create_dir_all(dir.path().join("js")).expect("mkdir");
        assert!(matches!(
            create(&request("ok")),
            Err(ScaffoldError::Exists(_))
        ));
        let p3 = Request {
            wasi: Wasi::P3,
            dir: Some(dir.path().join("p3")),
            ..request("ok")
        };
        assert!(matches!(create(&p3), Err(ScaffoldError::NoP3)));
    }
}
