//! Checking a component's imports against what the host provides.
//!
//! `Linker::instantiate_pre` stops at the first import it cannot satisfy. A
//! deploy should name every one, so on failure we probe: note the import the
//! error names, stand in a trapping stub for it on a scratch copy of the
//! linker, and try again until everything resolves. The stubs never run: the
//! probe linker is thrown away.

use crate::host::StoreData;
use serde::Serialize;
use wasmtime::Engine;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, InstancePre, Linker, ResourceType};

/// An import the host cannot satisfy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MissingImport {
    /// The import's name, e.g. `wasi:keyvalue/store@0.2.0-draft`.
    pub name: String,
    /// Why it does not link (absent, or present with another type).
    pub reason: String,
}

/// Stand-in type for stubbed resources.
struct StubResource;

/// Pre-instantiates `component`, or returns every import that does not link.
pub(crate) fn instantiate_pre(
    engine: &Engine,
    linker: &Linker<StoreData>,
    component: &Component,
) -> Result<InstancePre<StoreData>, Vec<MissingImport>> {
    let first = match linker.instantiate_pre(component) {
        Ok(pre) => return Ok(pre),
        Err(e) => e,
    };
    let imports: Vec<(String, ComponentItem)> = component
        .component_type()
        .imports(engine)
        .map(|(name, item)| (name.to_owned(), item.ty))
        .collect();
    let mut probe = linker.clone();
    probe.allow_shadowing(true);
    let mut missing: Vec<MissingImport> = Vec::new();
    let mut err = first;
    // Each round names one more import; there cannot be more rounds than imports.
    for _ in 0..=imports.len() {
        let message = err.to_string();
        let found = imports
            .iter()
            .find(|(name, _)| message.contains(&format!("`{name}`")));
        let Some((name, item)) = found else {
            // Not an import problem we can name: report the linker's words.
            missing.push(MissingImport {
                name: String::new(),
                reason: format!("{err:#}"),
            });
            break;
        };
        if missing.iter().any(|m| &m.name == name) {
            break;
        }
        let reason = err
            .chain()
            .skip(1)
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(": ");
        missing.push(MissingImport {
            name: name.clone(),
            reason: if reason.is_empty() {
                "not provided by this host".into()
            } else {
                reason
            },
        });
        if stub(&mut probe, engine, name, item).is_err() {
            break;
        }
        match probe.instantiate_pre(component) {
            Ok(_) => break,
            Err(e) => err = e,
        }
    }
    Err(missing)
}

fn stub(
    linker: &mut Linker<StoreData>,
    engine: &Engine,
    name: &str,
    item: &ComponentItem,
) -> wasmtime::Result<()> {
    match item {
        ComponentItem::ComponentFunc(_) => {
            linker
                .root()
                .func_new(name, |_, _, _, _| wasmtime::bail!("stub"))?;
        }
        ComponentItem::ComponentInstance(instance) => {
            let mut inst = linker.root().into_instance(name)?;
            for (export, item) in instance.exports(engine) {
                match item.ty {
                    ComponentItem::ComponentFunc(_) => {
                        inst.func_new(export, |_, _, _, _| wasmtime::bail!("stub"))?;
                    }
                    ComponentItem::Resource(_) => {
                        inst.resource(export, ResourceType::host::<StubResource>(), |_, _| Ok(()))?;
                    }
                    _ => {}
                }
            }
        }
        ComponentItem::Resource(_) => {
            linker
                .root()
                .resource(name, ResourceType::host::<StubResource>(), |_, _| Ok(()))?;
        }
        _ => wasmtime::bail!("cannot stub {name}"),
    }
    Ok(())
}
