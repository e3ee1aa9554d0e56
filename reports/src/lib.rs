//! Report writers; filled by the "Reports" issue.
