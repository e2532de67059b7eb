<?php
// The service provider under test (flexbridge, or a stand-in SP in a test).
// Environment:
//   SP_BASEURL     the SP's public URL without a trailing slash (default http://127.0.0.1:8080)
//   SP_ENTITY_ID   default <SP_BASEURL>/saml/metadata
//   SP_ACS_URL     default <SP_BASEURL>/saml/acs (HTTP-POST binding). The AuthnRequest's
//                  AssertionConsumerServiceURL must equal it exactly.
//   SP_CERT        optional path of the SP's PEM certificate: assertions are then encrypted to it
//   SP_NAMEID_FORMAT  'email' (default: emailAddress NameID = the email attribute),
//                  'transient', 'persistent' or 'unspecified' (= the uid attribute)
//
// SimpleSAMLphp 1.19 uses the NameIDFormat of this metadata whenever it has no NameID of the
// format the AuthnRequest asks for; crewjam/saml asks for transient by default and gets the
// email address.
$spBase = rtrim(getenv('SP_BASEURL') ?: 'http://127.0.0.1:8080', '/');
$entityID = getenv('SP_ENTITY_ID') ?: "$spBase/saml/metadata";
$acs = getenv('SP_ACS_URL') ?: "$spBase/saml/acs";

$formats = [
    'email' => ['urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress', 'email'],
    'transient' => ['urn:oasis:names:tc:SAML:2.0:nameid-format:transient', null],
    'persistent' => ['urn:oasis:names:tc:SAML:2.0:nameid-format:persistent', null],
    'unspecified' => ['urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified', 'uid'],
];
$format = getenv('SP_NAMEID_FORMAT') ?: 'email';
if (!isset($formats[$format])) {
    throw new \Exception("SP_NAMEID_FORMAT=$format: want one of " . implode(', ', array_keys($formats)));
}
$nameID = $formats[$format];

$sp = [
    'AssertionConsumerService' => [
        ['Binding' => 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST', 'Location' => $acs, 'index' => 1],
    ],
    'NameIDFormat' => $nameID[0],
    'attributes.NameFormat' => 'urn:oasis:names:tc:SAML:2.0:attrname-format:basic',
    'saml20.sign.response' => true,
    'saml20.sign.assertion' => true,
    'signature.algorithm' => 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
];
if ($nameID[1] !== null) {
    $sp['simplesaml.nameidattribute'] = $nameID[1];
}
if (getenv('SP_CERT')) {
    $sp['assertion.encryption'] = true;
    $sp['certificate'] = getenv('SP_CERT');
}
$metadata[$entityID] = $sp;
