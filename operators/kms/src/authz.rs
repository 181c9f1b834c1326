//! Who may use which key for what: an access key is bound to namespaces, optionally to certain
//! keys, and to a set of operations. Checked on every request before any cryptography runs.

use std::collections::BTreeSet;

use crate::error::KmsError;
use crate::keyring::KeyRecord;

/// The API operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    /// Encrypt.
    Encrypt,
    /// Decrypt.
    Decrypt,
    /// ReEncrypt (needs Decrypt on the source key and Encrypt on the destination too).
    ReEncrypt,
    /// GenerateDataKey.
    GenerateDataKey,
    /// GenerateDataKeyWithoutPlaintext.
    GenerateDataKeyWithoutPlaintext,
    /// DescribeKey.
    DescribeKey,
    /// ListKeys.
    ListKeys,
    /// ListAliases.
    ListAliases,
    /// EnableKey.
    EnableKey,
    /// DisableKey.
    DisableKey,
    /// ScheduleKeyDeletion.
    ScheduleKeyDeletion,
    /// CancelKeyDeletion.
    CancelKeyDeletion,
    /// GetKeyRotationStatus.
    GetKeyRotationStatus,
}

impl Operation {
    /// Every operation, in the order of the API reference.
    pub const ALL: [Operation; 13] = [
        Operation::Encrypt,
        Operation::Decrypt,
        Operation::ReEncrypt,
        Operation::GenerateDataKey,
        Operation::GenerateDataKeyWithoutPlaintext,
        Operation::DescribeKey,
        Operation::ListKeys,
        Operation::ListAliases,
        Operation::EnableKey,
        Operation::DisableKey,
        Operation::ScheduleKeyDeletion,
        Operation::CancelKeyDeletion,
        Operation::GetKeyRotationStatus,
    ];

    /// The `X-Amz-Target` suffix, e.g. `Encrypt`.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Encrypt => "Encrypt",
            Operation::Decrypt => "Decrypt",
            Operation::ReEncrypt => "ReEncrypt",
            Operation::GenerateDataKey => "GenerateDataKey",
            Operation::GenerateDataKeyWithoutPlaintext => "GenerateDataKeyWithoutPlaintext",
            Operation::DescribeKey => "DescribeKey",
            Operation::ListKeys => "ListKeys",
            Operation::ListAliases => "ListAliases",
            Operation::EnableKey => "EnableKey",
            Operation::DisableKey => "DisableKey",
            Operation::ScheduleKeyDeletion => "ScheduleKeyDeletion",
            Operation::CancelKeyDeletion => "CancelKeyDeletion",
            Operation::GetKeyRotationStatus => "GetKeyRotationStatus",
        }
    }

    /// From the `X-Amz-Target` header (`TrentService.<Op>`).
    pub fn from_target(target: &str) -> Option<Operation> {
        let op = target.strip_prefix("TrentService.")?;
        Operation::ALL.into_iter().find(|o| o.name() == op)
    }

    /// Changes key state (written to the `Cmk` object) rather than using the key.
    pub fn is_management(self) -> bool {
        matches!(
            self,
            Operation::EnableKey
                | Operation::DisableKey
                | Operation::ScheduleKeyDeletion
                | Operation::CancelKeyDeletion
        )
    }
}

/// What an access key may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Who holds the key (for audit lines), e.g. `shop/orders-app`.
    pub principal: String,
    /// Namespaces whose keys it may use.
    pub namespaces: BTreeSet<String>,
    /// Only these keys (ids or aliases) when set.
    pub keys: Option<BTreeSet<String>>,
    /// Only these operations when set; cryptographic and read operations by default.
    pub operations: Option<BTreeSet<Operation>>,
}

impl Grant {
    /// The namespace the grant defaults to for aliases (its only namespace, if one).
    pub fn home_namespace(&self) -> Option<&str> {
        match self.namespaces.len() {
            1 => self.namespaces.iter().next().map(String::as_str),
            _ => None,
        }
    }

    /// Whether `op` is allowed at all.
    pub fn allows(&self, op: Operation) -> bool {
        match &self.operations {
            Some(ops) => ops.contains(&op),
            None => !op.is_management(),
        }
    }

    /// Checks `op` on `key`. A key outside the grant looks like a missing key to the caller.
    pub fn check(&self, op: Operation, key: &KeyRecord) -> Result<(), KmsError> {
        if !self.allows(op) {
            return Err(KmsError::AccessDenied(format!(
                "{} is not authorized to perform: kms:{} on resource: {}",
                self.principal,
                op.name(),
                key.arn
            )));
        }
        if !self.namespaces.contains(&key.namespace) {
            return Err(KmsError::NotFound(format!(
                "Key '{}' does not exist",
                key.arn
            )));
        }
        if let Some(keys) = &self.keys {
            let id = key.key_id.to_string();
            if !keys.contains(&id) && !key.aliases.iter().any(|a| keys.contains(a)) {
                return Err(KmsError::AccessDenied(format!(
                    "{} is not authorized to perform: kms:{} on resource: {}",
                    self.principal,
                    op.name(),
                    key.arn
                )));
            }
        }
        Ok(())
    }

    /// Whether a key appears in ListKeys / ListAliases.
    pub fn sees(&self, key: &KeyRecord) -> bool {
        self.check(Operation::DescribeKey, key).is_ok()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::keyring::fixtures::record;

    fn grant(ns: &str) -> Grant {
        Grant {
            principal: format!("{ns}/app"),
            namespaces: [ns.to_owned()].into(),
            keys: None,
            operations: None,
        }
    }

    #[test]
    fn a_key_of_another_namespace_is_refused_as_not_found() {
        let other = record("other", "alias/x");
        let err = grant("shop").check(Operation::Decrypt, &other).unwrap_err();
        assert_eq!(err.code(), "NotFoundException");
        assert!(!grant("shop").sees(&other));
        assert!(
            grant("shop")
                .check(Operation::Encrypt, &record("shop", "alias/x"))
                .is_ok()
        );
    }

    #[test]
    fn management_needs_an_explicit_grant_and_keys_can_be_pinned() {
        let k = record("shop", "alias/orders");
        let g = grant("shop");
        assert_eq!(
            g.check(Operation::DisableKey, &k).unwrap_err().code(),
            "AccessDeniedException"
        );
        let admin = Grant {
            operations: Some([Operation::DisableKey, Operation::EnableKey].into()),
            ..grant("shop")
        };
        assert!(admin.check(Operation::DisableKey, &k).is_ok());
        assert!(
            admin.check(Operation::Encrypt, &k).is_err(),
            "only what is listed"
        );
        let pinned = Grant {
            keys: Some(["alias/orders".to_owned()].into()),
            ..grant("shop")
        };
        assert!(pinned.check(Operation::Encrypt, &k).is_ok());
        let other = record("shop", "alias/billing");
        assert_eq!(
            pinned.check(Operation::Encrypt, &other).unwrap_err().code(),
            "AccessDeniedException"
        );
    }

    #[test]
    fn targets_map_to_operations() {
        assert_eq!(
            Operation::from_target("TrentService.Encrypt"),
            Some(Operation::Encrypt)
        );
        assert_eq!(
            Operation::from_target("TrentService.GetKeyRotationStatus"),
            Some(Operation::GetKeyRotationStatus)
        );
        assert_eq!(Operation::from_target("TrentService.CreateGrant"), None);
        assert_eq!(Operation::from_target("Encrypt"), None);
    }
}
