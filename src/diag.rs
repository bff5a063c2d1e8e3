//! Diagnostics: a message tied to the place in a file that caused it.

use std::fmt;

use crate::yaml::Location;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub location: Location,
    pub message: String,
}

impl Diagnostic {
    pub fn new(location: &Location, message: impl Into<String>) -> Self {
        Diagnostic { location: location.clone(), message: message.into() }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// The one way a YAML error becomes a diagnostic: its place, and what was wrong there.
impl From<&crate::yaml::YamlError> for Diagnostic {
    fn from(e: &crate::yaml::YamlError) -> Self {
        match e {
            crate::yaml::YamlError::Syntax { location, message } => Diagnostic::new(location, format!("invalid YAML: {message}")),
            crate::yaml::YamlError::Io { path, source } => {
                Diagnostic::new(&Location::synthetic(&path.display().to_string()), format!("cannot read: {source}"))
            }
        }
    }
}

/// Several diagnostics, printed one per line.
#[derive(Debug, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}
