<?php
// Test users of flexbridge's real-IdP tests (exampleauth:UserPass, plain-text passwords).
// internal/testutil/ssp mirrors this list in users.go: change both together.
//
//   user   password    groups
//   alice  alicepass   Flex Supervisors, Flex Agents
//   bob    bobpass     Flex Agents
//   carol  carolpass   (none: the groups attribute is sent with no value)
//
// Attributes are released with NameFormat basic under these names; the NameID is the
// email address (see metadata/saml20-sp-remote.php).
$config = [
    'admin' => ['core:AdminPassword'],

    'flexbridge-users' => [
        'exampleauth:UserPass',
        'alice:alicepass' => [
            'uid' => ['alice'],
            'email' => ['alice@example.com'],
            'displayName' => ['Alice Example'],
            'groups' => ['Flex Supervisors', 'Flex Agents'],
        ],
        'bob:bobpass' => [
            'uid' => ['bob'],
            'email' => ['bob@example.com'],
            'displayName' => ['Bob Example'],
            'groups' => ['Flex Agents'],
        ],
        'carol:carolpass' => [
            'uid' => ['carol'],
            'email' => ['carol@example.com'],
            'displayName' => ['Carol Example'],
            'groups' => [],
        ],
    ],
];
