import { describe, expect, it } from 'vitest';
import { ConfigError } from '@registrar/core';
import { commandFailures, parseRuntimeAddress, parseServersState } from './haproxy.js';

// Captured from HAProxy 2.6.12 (Debian 12): three `server-template` slots, the first set ready at 9001.
const STATE = `1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 web 1 s1 127.0.0.1 2 4 1 1 0 1 0 1 6 0 0 0 - 9001 - 0 0 - - 0
3 web 2 s2 127.0.0.1 0 5 1 1 1 1 0 0 14 0 0 0 - 80 - 0 0 - - 0
3 web 3 s3 10.1.2.3 0 1 1 1 1 1 0 0 14 0 0 0 - 80 - 0 0 - - 0

`;

describe('parseServersState', () => {
  it('reads each slot; configuration-disabled but set ready counts as enabled', () => {
    expect(parseServersState(STATE, 'web')).toEqual([
      { name: 's1', id: 1, address: '127.0.0.1', port: 9001, enabled: true },
      { name: 's2', id: 2, address: '127.0.0.1', port: 80, enabled: false },
      { name: 's3', id: 3, address: '10.1.2.3', port: 80, enabled: false },
    ]);
  });

  it('finds columns by name, so added or moved columns still parse', () => {
    const moved = `1
# be_id be_name srv_id srv_name srv_port srv_addr srv_op_state srv_admin_state extra
3 web 1 s1 9001 10.0.0.1 2 0 x
`;
    expect(parseServersState(moved, 'web')).toEqual([
      { name: 's1', id: 1, address: '10.0.0.1', port: 9001, enabled: true },
    ]);
  });

  it('refuses an answer without the state header, naming the backend', () => {
    expect(() => parseServersState("Can't find backend.\n", 'nope')).toThrow(/HAProxy has no backend "nope"/);
  });
});

describe('parseRuntimeAddress', () => {
  it.each([
    ['/run/haproxy/admin.sock', { path: '/run/haproxy/admin.sock' }],
    ['unix:/run/haproxy/admin.sock', { path: '/run/haproxy/admin.sock' }],
    ['127.0.0.1:9999', { host: '127.0.0.1', port: 9999 }],
    ['haproxy:9999', { host: 'haproxy', port: 9999 }],
    ['[::1]:9999', { host: '::1', port: 9999 }],
  ])('%s', (text, expected) => {
    expect(parseRuntimeAddress(text)).toEqual(expected);
  });

  it.each(['haproxy', 'haproxy:0', 'haproxy:99999', 'run/admin.sock', ''])(
    'refuses %j in one line',
    (text) => {
      expect(() => parseRuntimeAddress(text)).toThrow(ConfigError);
      expect(() => parseRuntimeAddress(text)).toThrow(
        /^invalid HAProxy runtime API address .*: expected a unix socket path/,
      );
    },
  );
});

describe('commandFailures', () => {
  it('keeps the refusals and ignores what HAProxy says it changed', () => {
    const answer =
      "no need to change the addr, port changed from '80' to '9001' by 'stats socket command'\n\nNo such server.\n";
    expect(commandFailures(answer)).toEqual(['No such server.']);
  });
});
