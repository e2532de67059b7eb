<?php
// The hosted SAML 2.0 IdP. Its entity id, and its metadata URL, is
// <baseurlpath>saml2/idp/metadata.php, e.g. http://127.0.0.2:8081/saml2/idp/metadata.php.
// The key pair idp.key / idp.crt is looked up in 'certdir' (SSP_CERTDIR).
$metadata['__DYNAMIC:1__'] = [
    'host' => '__DEFAULT__',
    'privatekey' => 'idp.key',
    'certificate' => 'idp.crt',
    'auth' => 'flexbridge-users',
    // Sign both the Response and the Assertion, with RSA-SHA256 (SHA-256 digests).
    'saml20.sign.response' => true,
    'saml20.sign.assertion' => true,
    'signature.algorithm' => 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
    'attributes.NameFormat' => 'urn:oasis:names:tc:SAML:2.0:attrname-format:basic',
    'NameIDFormat' => 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress',
    'simplesaml.nameidattribute' => 'email',
    // The source of persistent NameIDs (a salted hash of it) and of eduPersonTargetedID.
    'userid.attribute' => 'uid',
];
