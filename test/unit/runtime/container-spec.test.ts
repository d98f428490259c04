// The inspect → create mapping, on `docker inspect` output captured from a real engine
// (fixtures/container-full.json: a container made with many `docker create` options, and
// fixtures/image-full.json: the image it was made from).
import assert from 'node:assert/strict';
import { assertIncludesDeep } from '../../support/assert.js';
import { readFileSync } from 'node:fs';
import { recreateSpec, envOverrides, type ContainerInspectLike, type ImageConfigLike } from '../../../agent/runtime/container-spec.js';

const here = new URL('./fixtures/', import.meta.url);
const loadJson = <T>(name: string): T => JSON.parse(readFileSync(new URL(name, here), 'utf8')) as T;
const container = () => loadJson<ContainerInspectLike>('container-full.json');
const image = () => loadJson<{ Config: ImageConfigLike }>('image-full.json').Config;

describe('runtime/container-spec recreateSpec', () => {
  it('sets the new image and keeps the explicit hostname', () => {
    const { create } = recreateSpec(container(), image(), 'example/web:2');
    assert.equal(create.Image, 'example/web:2');
    assert.equal(create.Hostname, 'fixhost');
  });

  it('drops the default hostname (the old container\'s short ID)', () => {
    const c = container();
    c.Config.Hostname = c.Id.slice(0, 12);
    assert.ok(!('Hostname' in (recreateSpec(c, image(), 'x:2').create)));
  });

  it('carries only env entries the image did not provide', () => {
    const { create } = recreateSpec(container(), image(), 'x:2');
    assert.deepEqual(create.Env, ['FOO=bar']);
    // an image value changed by the container is an override
    assert.deepEqual(envOverrides(['PATH=/usr/bin', 'A=1'], ['PATH=/bin']), ['PATH=/usr/bin', 'A=1']);
  });

  it('keeps entrypoint and cmd overrides together', () => {
    const { create } = recreateSpec(container(), image(), 'x:2');
    assert.deepEqual(create.Entrypoint, ['/bin/busybox']);
    assert.deepEqual(create.Cmd, ['httpd', '-f', '-p', '8080', '-h', '/www']);
  });

  it('does not freeze the image\'s Cmd, Entrypoint, WorkingDir, User, labels, ports and volumes', () => {
    const c = container();
    const img = image();
    // a container that took everything from its image
    c.Config.Cmd = img.Cmd;
    c.Config.Entrypoint = null;
    c.Config.WorkingDir = '';
    c.Config.User = '';
    c.Config.Env = img.Env;
    c.Config.Labels = { ...img.Labels };
    c.Config.ExposedPorts = { ...img.ExposedPorts };
    c.Config.Volumes = null;
    const { create } = recreateSpec(c, img, 'x:2');
    for (const key of ['Cmd', 'Entrypoint', 'WorkingDir', 'User', 'Env', 'Labels', 'ExposedPorts', 'Volumes', 'Healthcheck']) {
      assert.ok(!(key in create), key);
    }
  });

  it('carries working dir, user, own labels, extra exposed ports and anonymous volumes', () => {
    const { create } = recreateSpec(container(), image(), 'x:2');
    assert.equal(create.WorkingDir, '/www');
    assert.equal(create.User, '0:0');
    assert.deepEqual(create.Labels, { 'app.role': 'web' });
    assert.deepEqual(create.ExposedPorts, { '9090/tcp': {} });
    assert.deepEqual(create.Volumes, { '/anon': {} });
  });

  it('keeps an image healthcheck out, but a container-level override in', () => {
    const c = container();
    const img = image();
    const hc = { Test: ['CMD', 'true'], Interval: 1e9 };
    img.Healthcheck = hc;
    c.Config.Healthcheck = hc;
    assert.ok(!('Healthcheck' in (recreateSpec(c, img, 'x:2').create)));
    c.Config.Healthcheck = { Test: ['NONE'] };
    assert.deepEqual(recreateSpec(c, img, 'x:2').create.Healthcheck, { Test: ['NONE'] });
  });

  it('copies the host config: ports, restart policy, log config, capabilities, resources, binds, tmpfs', () => {
    const { create } = recreateSpec(container(), image(), 'x:2');
    const h = create.HostConfig as Record<string, unknown>;
    assert.deepEqual(h.PortBindings, { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: '18190' }] });
    assert.deepEqual(h.RestartPolicy, { Name: 'unless-stopped', MaximumRetryCount: 0 });
    assert.deepEqual(h.LogConfig, { Type: 'json-file', Config: { 'max-size': '1m' } });
    assert.deepEqual(h.CapAdd, ['CAP_NET_ADMIN']);
    assert.deepEqual(h.CapDrop, ['CAP_MKNOD']);
    assert.equal(h.Memory, 64 * 1024 * 1024);
    assert.deepEqual(h.Binds, ['caisson-rt-fixvol:/data', '/tmp:/hosttmp:ro']);
    assert.deepEqual(h.Tmpfs, { '/run': 'size=1m' });
    assert.equal(h.NetworkMode, 'caisson-rt-fixnet');
    assert.ok(!('ContainerIDFile' in h));
  });

  it('mounts the old anonymous volume by name so its data stays', () => {
    const c = container();
    const anon = c.Mounts!.find((m) => m.Destination === '/anon')!;
    const { create } = recreateSpec(c, image(), 'x:2');
    const mounts = (create.HostConfig as unknown as { Mounts: Array<Record<string, unknown>> }).Mounts;
    assertIncludesDeep(mounts, { Type: 'volume', Source: anon.Name, Target: '/anon', ReadOnly: false });
    assertIncludesDeep(mounts, { Type: 'tmpfs', Target: '/scratch' });
    // the named volume and the bind travel in Binds, not twice
    assert.equal(mounts.filter((m) => m.Target === '/data' || m.Target === '/hosttmp').length, 0);
  });

  it('fills in the volume name of an anonymous --mount type=volume', () => {
    const c = container();
    c.HostConfig.Mounts = [{ Type: 'volume', Target: '/anon' }];
    const { create } = recreateSpec(c, image(), 'x:2');
    const mounts = (create.HostConfig as unknown as { Mounts: Array<Record<string, unknown>> }).Mounts;
    assert.equal(mounts.length, 1);
    assert.equal(mounts[0]!.Source, c.Mounts!.find((m) => m.Destination === '/anon')!.Name);
  });

  it('creates on the primary network and connects the others, without the ID and hostname aliases', () => {
    const c = container();
    const { create, connect } = recreateSpec(c, image(), 'x:2');
    assert.deepEqual(create.NetworkingConfig, { EndpointsConfig: { 'caisson-rt-fixnet': { Aliases: ['web'] } } });
    assert.deepEqual(connect, [{ network: 'caisson-rt-fixnet2', endpoint: { Aliases: ['web2'] } }]);
  });

  it('keeps static addresses and takes no aliases on the default bridge', () => {
    const c = container();
    c.HostConfig.NetworkMode = 'default';
    c.NetworkSettings = {
      Networks: { bridge: { Aliases: null, IPAMConfig: null, Links: null, DriverOpts: null } },
    };
    assert.deepEqual(recreateSpec(c, image(), 'x:2').create.NetworkingConfig, { EndpointsConfig: { bridge: {} } });
    c.HostConfig.NetworkMode = 'lan';
    c.NetworkSettings = { Networks: { lan: { Aliases: ['db', c.Id.slice(0, 12)], IPAMConfig: { IPv4Address: '10.9.0.5' } } } };
    assert.deepEqual(recreateSpec(c, image(), 'x:2').create.NetworkingConfig, {
      EndpointsConfig: { lan: { Aliases: ['db'], IPAMConfig: { IPv4Address: '10.9.0.5' } } },
    });
  });

  it('sets no networks and no hostname for host networking', () => {
    const c = container();
    c.HostConfig.NetworkMode = 'host';
    c.NetworkSettings = { Networks: { host: { Aliases: null } } };
    const { create, connect } = recreateSpec(c, image(), 'x:2');
    assert.ok(!('NetworkingConfig' in create));
    assert.ok(!('Hostname' in create));
    assert.deepEqual(connect, []);
  });

  it('rewrites legacy links from inspect form to create form', () => {
    const c = container();
    c.HostConfig.Links = ['/db:/caisson-rt-fixture/database'];
    assert.deepEqual((recreateSpec(c, image(), 'x:2').create.HostConfig as { Links: string[] }).Links, ['db:database']);
  });

  it('keeps an empty Cmd that differs from the image\'s only together with the entrypoint', () => {
    const c = container();
    const img = image();
    c.Config.Entrypoint = img.Entrypoint ?? null;
    c.Config.Cmd = null;
    const { create } = recreateSpec(c, img, 'x:2');
    assert.deepEqual(create.Entrypoint, []);
    assert.deepEqual(create.Cmd, []);
  });
});
