// Drives the Salesforce simulator with jsforce, an independent real client, and prints a
// JSON summary on its last line for the Go test to check. Any failed expectation exits 1.
'use strict';
const assert = require('node:assert/strict');
const jsforce = require('jsforce');

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`missing environment variable ${name}`);
  return v;
};
const loginUrl = env('SF_LOGIN_URL');
const version = env('SF_VERSION');
const STUDENT = 'skilljar__Student__c';
const PROGRESS = 'skilljar__Course_Progress__c';
const COURSE = 'skilljar__Course__c';
const EXT = 'skilljar__Obfuscated_Id__c';

async function main() {
  const summary = {};
  const oauth2 = new jsforce.OAuth2({
    loginUrl,
    clientId: env('SF_CLIENT_ID'),
    clientSecret: env('SF_CLIENT_SECRET'),
    redirectUri: env('SF_REDIRECT_URI'),
    useVerifier: true, // PKCE: jsforce sends code_challenge, then code_verifier
  });

  // 1. Authorization-code flow with PKCE: follow the authorize redirect by hand, as the
  //    browser would, and let jsforce exchange the code.
  const authUrl = oauth2.getAuthorizationUrl({ scope: 'api refresh_token', state: 'st-42' });
  assert.match(authUrl, /code_challenge=/);
  const redirect = await fetch(authUrl, { redirect: 'manual' });
  assert.equal(redirect.status, 302);
  const callback = new URL(redirect.headers.get('location'));
  assert.equal(callback.searchParams.get('state'), 'st-42');
  const code = callback.searchParams.get('code');
  assert.ok(code);

  const conn = new jsforce.Connection({ oauth2, version });
  const userInfo = await conn.authorize(code);
  assert.ok(userInfo.id && userInfo.organizationId);
  assert.ok(conn.accessToken && conn.refreshToken && conn.instanceUrl);
  assert.notEqual(new URL(conn.instanceUrl).host, new URL(loginUrl).host);
  const firstRefresh = conn.refreshToken;
  summary.userId = userInfo.id;
  summary.orgId = userInfo.organizationId;

  // 2. A rotated refresh. jsforce refreshes on 401 but keeps its stale refresh token, so
  //    the app must take the rotated one from the 'refresh' event.
  let rotated = null;
  conn.on('refresh', (_accessToken, res) => {
    rotated = res.refresh_token;
    conn.refreshToken = res.refresh_token;
  });
  await oauth2.revokeToken(conn.accessToken); // revoking one access token forces a 401
  const limits = await conn.request(`/services/data/v${version}/limits`);
  assert.ok(limits.DailyApiRequests.Max > 0);
  assert.ok(rotated, 'no refresh event');
  assert.notEqual(rotated, firstRefresh);
  summary.rotated = true;

  // 3. Collections upsert through conn.request, per-record results in order.
  const body = {
    allOrNone: false,
    records: [
      { attributes: { type: STUDENT }, [EXT]: 'js-stu-1', skilljar__Email__c: 'one@example.com' },
      { attributes: { type: STUDENT }, [EXT]: 'js-stu-2', skilljar__Email__c: 'not-an-email' },
      { attributes: { type: STUDENT }, [EXT]: 'js-stu-3', skilljar__Email__c: "o'brien+x@example.com" },
    ],
  };
  const results = await conn.request({
    method: 'PATCH',
    url: `/services/data/v${version}/composite/sobjects/${STUDENT}/${EXT}`,
    body: JSON.stringify(body),
    headers: { 'content-type': 'application/json' },
  });
  assert.equal(results.length, 3);
  assert.deepEqual(results.map((r) => r.success), [true, false, true]);
  assert.equal(results[0].created, true);
  assert.equal(results[1].errors[0].statusCode, 'INVALID_EMAIL_ADDRESS');
  summary.collectionResults = results.map((r) => (r.success ? 'ok' : r.errors[0].statusCode));

  // jsforce's own upsert: an array goes through collections, a single record through
  // PATCH sobjects/{type}/{field}/{value}.
  const many = await conn.sobject(STUDENT).upsert(
    [{ [EXT]: 'js-stu-1', skilljar__Email__c: 'uno@example.com' }], EXT);
  assert.equal(many[0].success, true);
  assert.equal(many[0].created, false);
  const one = await conn.sobject(COURSE).upsert({ [EXT]: 'js-course-1', skilljar__Title__c: 'Intro' }, EXT);
  assert.equal(one.success, true);

  // jsforce's create of an array is a collections insert (POST composite/sobjects); with no
  // type argument each record names its own. A single-record update is PATCH
  // sobjects/{type}/{id}, which answers 204.
  const created = await conn.create('', [
    { attributes: { type: COURSE }, [EXT]: 'js-course-2', skilljar__Title__c: 'Second' },
    { attributes: { type: 'Contact' }, LastName: 'Lovelace', Email: 'ada@example.com' },
    { attributes: { type: 'Contact' }, Email: 'no-last-name@example.com' },
  ]);
  assert.deepEqual(created.map((r) => r.success), [true, true, false]);
  assert.equal(created[2].errors[0].statusCode, 'REQUIRED_FIELD_MISSING');
  const updated = await conn.sobject('Contact').update({ Id: created[1].id, FirstName: 'Ada' });
  assert.deepEqual(updated, { id: created[1].id, success: true, errors: [] });
  summary.createResults = created.map((r) => (r.success ? 'ok' : r.errors[0].statusCode));
  summary.contactId = created[1].id;

  // 4. Bulk API 2.0 upsert, with parents by external id in relationship columns.
  const input = [];
  for (let i = 0; i < 25; i++) {
    input.push({
      [EXT]: `js-prog-${i}`,
      'skilljar__Student__r.skilljar__Obfuscated_Id__c': i === 24 ? 'js-ghost' : 'js-stu-1',
      'skilljar__Course__r.skilljar__Obfuscated_Id__c': 'js-course-1',
      skilljar__Success_Status__c: i % 2 ? 'PASSED' : 'FAILED',
      skilljar__Score__c: i,
    });
  }
  const bulk = await conn.bulk2.loadAndWaitForResults({
    object: PROGRESS,
    operation: 'upsert',
    externalIdFieldName: EXT,
    input,
    pollInterval: 50,
    pollTimeout: 30000,
  });
  assert.equal(bulk.successfulResults.length, 24);
  assert.equal(bulk.failedResults.length, 1);
  assert.match(bulk.failedResults[0].sf__Error, /^INVALID_FIELD:Foreign key external ID: js-ghost/);
  assert.equal(bulk.unprocessedRecords.length, 0);
  summary.bulk = { ok: bulk.successfulResults.length, failed: bulk.failedResults.length };

  // 5. COUNT() and a relationship query.
  const count = await conn.query(`SELECT COUNT() FROM ${PROGRESS} WHERE skilljar__Student__r.${EXT} = 'JS-STU-1'`);
  assert.equal(count.totalSize, 24);
  const rows = await conn.query(`SELECT Id, ${EXT}, skilljar__Student__r.${EXT} FROM ${PROGRESS} ORDER BY skilljar__Score__c DESC LIMIT 1`);
  assert.equal(rows.records[0][EXT], 'js-prog-23');
  assert.equal(rows.records[0].skilljar__Student__r[EXT], 'js-stu-1');
  summary.count = count.totalSize;
  summary.apiUsage = conn.limitInfo.apiUsage;

  // 6. Reusing the rotated-out refresh token revokes the grant: the refresh fails and so
  //    does the next data call, once jsforce's own refresh attempt is refused.
  await assert.rejects(oauth2.refreshToken(firstRefresh), (err) => err.name === 'invalid_grant');
  await assert.rejects(conn.query(`SELECT COUNT() FROM ${STUDENT}`));
  summary.reuseRevoked = true;

  console.log(JSON.stringify(summary));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
