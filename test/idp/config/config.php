<?php
// SimpleSAMLphp 1.19 (Debian 12 package `simplesamlphp`) configuration for flexbridge's
// real-IdP tests. It replaces the Debian one in /etc/simplesamlphp: point SimpleSAMLphp at
// this directory with SIMPLESAMLPHP_CONFIG_DIR and serve it with PHP's built-in server:
//
//   SIMPLESAMLPHP_CONFIG_DIR=<copy of test/idp/config> SSP_BASE=... SSP_BASEURL=... \
//     php -S 127.0.0.2:PORT -t /usr/share/simplesamlphp/www
//
// internal/testutil/ssp does this for Go tests (it copies config/ and metadata/ into a
// temporary directory and sets the environment below). Test-only: fixed secrets, no TLS.
//
// Environment (read with getenv, which `php -S` passes through):
//   SSP_BASE         writable runtime directory; log/ data/ tmp/ sessions/ are made in it
//   SSP_BASEURL      external base URL of the IdP with a trailing slash, e.g.
//                    http://127.0.0.2:8081/ (the IdP entity id is <SSP_BASEURL>saml2/idp/metadata.php)
//   SSP_CERTDIR      directory holding idp.key and idp.crt (default <SSP_BASE>/cert)
//   SSP_METADATADIR  directory holding saml20-*.php (default ../metadata next to this config)
//   SSP_LOG_LEVEL    DEBUG, INFO (default), NOTICE, WARNING or ERR; the log goes to stderr
//   SP_*             read by metadata/saml20-sp-remote.php (the service provider)
$base = rtrim(getenv('SSP_BASE') ?: sys_get_temp_dir() . '/flexbridge-ssp', '/');
foreach (['log', 'data', 'tmp', 'sessions'] as $d) {
    if (!is_dir("$base/$d")) {
        @mkdir("$base/$d", 0700, true);
    }
}
$levels = [
    'DEBUG' => SimpleSAML\Logger::DEBUG,
    'INFO' => SimpleSAML\Logger::INFO,
    'NOTICE' => SimpleSAML\Logger::NOTICE,
    'WARNING' => SimpleSAML\Logger::WARNING,
    'ERR' => SimpleSAML\Logger::ERR,
];
$level = strtoupper(getenv('SSP_LOG_LEVEL') ?: 'INFO');

$config = [
    // With `php -S -t www` the base path is '/' (Debian's default 'simplesamlphp/' is for
    // its Apache alias). A full URL makes every generated URL and the entity id absolute.
    'baseurlpath' => getenv('SSP_BASEURL') ?: 'http://127.0.0.2:8081/',
    'certdir' => rtrim(getenv('SSP_CERTDIR') ?: "$base/cert", '/') . '/',
    'metadatadir' => rtrim(getenv('SSP_METADATADIR') ?: dirname(__DIR__) . '/metadata', '/') . '/',
    'loggingdir' => "$base/log/",
    'datadir' => "$base/data/",
    'tempdir' => "$base/tmp/",

    // Must be set and must not be 'defaultsecretsalt' (getSecretSalt() throws otherwise).
    'secretsalt' => 'flexbridge-test-only-secret-salt',
    'auth.adminpassword' => 'flexbridge-test-admin',
    'technicalcontact_name' => 'flexbridge tests',
    'technicalcontact_email' => 'test@example.com',
    'timezone' => 'UTC',

    'admin.protectindexpage' => false,
    'admin.protectmetadata' => false,
    'admin.checkforupdates' => false,
    'trusted.url.domains' => [],

    // Debian ships with the SAML 2.0 IdP and exampleauth turned off.
    'enable.saml20-idp' => true,
    'enable.shib13-idp' => false,
    'enable.adfs-idp' => false,
    'module.enable' => ['exampleauth' => true, 'core' => true, 'saml' => true, 'admin' => true],

    'assertion.allowed_clock_skew' => 180,
    'debug' => ['saml' => false, 'backtraces' => true, 'validatexml' => false],
    'showerrors' => true,
    'errorreporting' => false,
    'logging.level' => $levels[$level] ?? SimpleSAML\Logger::INFO,
    'logging.handler' => 'stderr',          // Debian's default, syslog, is invisible to tests
    'logging.processname' => 'simplesamlphp',
    'statistics.out' => [],

    'session.duration' => 8 * 3600,
    'session.datastore.timeout' => 4 * 3600,
    'session.state.timeout' => 3600,
    'session.cookie.name' => 'SimpleSAMLSessionID',
    'session.cookie.lifetime' => 0,
    'session.cookie.path' => '/',
    'session.cookie.domain' => null,
    // Plain http on loopback: Debian's true makes every page fail with
    // "Setting secure cookie on plain HTTP is not allowed".
    'session.cookie.secure' => false,
    'session.cookie.samesite' => null,
    'session.phpsession.cookiename' => 'SimpleSAML',
    'session.phpsession.savepath' => "$base/sessions",
    'session.phpsession.httponly' => true,
    'session.authtoken.cookiename' => 'SimpleSAMLAuthToken',
    'language.default' => 'en',
    'language.cookie.secure' => false,
    'language.cookie.samesite' => null,
    'theme.use' => 'default',
    'production' => true,
    'store.type' => 'phpsession',
    'metadata.sources' => [['type' => 'flatfile']],
];
