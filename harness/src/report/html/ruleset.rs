//! The validate-ruleset page.
