// The inspect → create mapping, on `docker inspect` output captured from a real engine
// (fixtures/container-full.json: a container made with many `docker create` options, and
// fixtures/image-full.json: the image it was made from).
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { recreateSpec, envOverrides, type ContainerInspectLike, type ImageConfigLike } from '../../../agent/runtime/container-spec.js';

const here = new URL('./fixtures/', import.meta.url);
const loadJson = <T>(name: string): T => JSON.parse(readFileSync(new URL(name, here), 'utf8')) as T;
const container = () => loadJson<ContainerInspectLike>('container-full.json');
const image = () => loadJson<{ Config: ImageConfigLike }>('image-full.json').Config;

describe('runtime/container-spec recreateSpec', () => {
  it('sets the new image and keeps the explicit hostname', () => {
    const { create } = recreateSpec(container(), image(), 'example/web:2');
    expect(create.Image).to.equal('example/web:2');
    expect(create.Hostname).to.equal('fixhost');
  });

  it('drops the default hostname (the old container\'s short ID)', () => {
    const c = container();
    c.Config.Hostname = c.Id.slice(0, 12);
    expect(recreateSpec(c, image(), 'x:2').create).to.not.have.property('Hostname');
  });

  it('carries only env entries the image did not provide', () => {
    const { create } = recreateSpec(container(), image(), 'x:2');
    expect(create.Env).to.deep.equal(['FOO=bar']);
    // an image value changed by the container is an override
    expect(envOverrides(['PATH=/usr/bin', 'A=1'], ['PATH=/bin'])).to.deep.equal(['PATH=/usr/bin', 'A=1']);
  });

  it('keeps entrypoint and cmd overrides together', () => {
    const { create } = recreateSpec(container(), image(), 'x:2');
    expect(create.Entrypoint).to.deep.equal(['/bin/busybox']);
    expect(create.Cmd).to.deep.equal(['httpd', '-f', '-p', '8080', '-h', '/www']);
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
      expect(create, key).to.not.have.property(key);
    }
  });

  it('carries working dir, user, own labels, extra exposed ports and anonymous volumes', () => {
    const { create } = recreateSpec(container(), image(), 'x:2');
    expect(create.WorkingDir).to.equal('/www');
    expect(create.User).to.equal('0:0');
    expect(create.Labels).to.deep.equal({ 'app.role': 'web' });
    expect(create.ExposedPorts).to.deep.equal({ '9090/tcp': {} });
    expect(create.Volumes).to.deep.equal({ '/anon': {} });
  });

  it('keeps an image healthcheck out, but a container-level override in', () => {
    const c = container();
    const img = image();
    const hc = { Test: ['CMD', 'true'], Interval: 1e9 };
    img.Healthcheck = hc;
    c.Config.Healthcheck = hc;
    expect(recreateSpec(c, img, 'x:2').create).to.not.have.property('Healthcheck');
    c.Config.Healthcheck = { Test: ['NONE'] };
    expect(recreateSpec(c, img, 'x:2').create.Healthcheck).to.deep.equal({ Test: ['NONE'] });
  });

  it('copies the host config: ports, restart policy, log config, capabilities, resources, binds, tmpfs', () => {
    const { create } = recreateSpec(container(), image(), 'x:2');
    const h = create.HostConfig as Record<string, unknown>;
    expect(h.PortBindings).to.deep.equal({ '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: '18190' }] });
    expect(h.RestartPolicy).to.deep.equal({ Name: 'unless-stopped', MaximumRetryCount: 0 });
    expect(h.LogConfig).to.deep.equal({ Type: 'json-file', Config: { 'max-size': '1m' } });
    expect(h.CapAdd).to.deep.equal(['CAP_NET_ADMIN']);
    expect(h.CapDrop).to.deep.equal(['CAP_MKNOD']);
    expect(h.Memory).to.equal(64 * 1024 * 1024);
    expect(h.Binds).to.deep.equal(['caisson-rt-fixvol:/data', '/tmp:/hosttmp:ro']);
    expect(h.Tmpfs).to.deep.equal({ '/run': 'size=1m' });
    expect(h.NetworkMode).to.equal('caisson-rt-fixnet');
    expect(h).to.not.have.property('ContainerIDFile');
  });

  it('mounts the old anonymous volume by name so its data stays', () => {
    const c = container();
    const anon = c.Mounts!.find((m) => m.Destination === '/anon')!;
    const { create } = recreateSpec(c, image(), 'x:2');
    const mounts = (create.HostConfig as unknown as { Mounts: Array<Record<string, unknown>> }).Mounts;
    expect(mounts).to.deep.include({ Type: 'volume', Source: anon.Name, Target: '/anon', ReadOnly: false });
    expect(mounts).to.deep.include({ Type: 'tmpfs', Target: '/scratch' });
    // the named volume and the bind travel in Binds, not twice
    expect(mounts.filter((m) => m.Target === '/data' || m.Target === '/hosttmp')).to.have.length(0);
  });

  it('fills in the volume name of an anonymous --mount type=volume', () => {
    const c = container();
    c.HostConfig.Mounts = [{ Type: 'volume', Target: '/anon' }];
    const { create } = recreateSpec(c, image(), 'x:2');
    const mounts = (create.HostConfig as unknown as { Mounts: Array<Record<string, unknown>> }).Mounts;
    expect(mounts).to.have.length(1);
    expect(mounts[0]!.Source).to.equal(c.Mounts!.find((m) => m.Destination === '/anon')!.Name);
  });

  it('creates on the primary network and connects the others, without the ID and hostname aliases', () => {
    const c = container();
    const { create, connect } = recreateSpec(c, image(), 'x:2');
    expect(create.NetworkingConfig).to.deep.equal({ EndpointsConfig: { 'caisson-rt-fixnet': { Aliases: ['web'] } } });
    expect(connect).to.deep.equal([{ network: 'caisson-rt-fixnet2', endpoint: { Aliases: ['web2'] } }]);
  });

  it('keeps static addresses and takes no aliases on the default bridge', () => {
    const c = container();
    c.HostConfig.NetworkMode = 'default';
    c.NetworkSettings = {
      Networks: { bridge: { Aliases: null, IPAMConfig: null, Links: null, DriverOpts: null } },
    };
    expect(recreateSpec(c, image(), 'x:2').create.NetworkingConfig).to.deep.equal({ EndpointsConfig: { bridge: {} } });
    c.HostConfig.NetworkMode = 'lan';
    c.NetworkSettings = { Networks: { lan: { Aliases: ['db', c.Id.slice(0, 12)], IPAMConfig: { IPv4Address: '10.9.0.5' } } } };
    expect(recreateSpec(c, image(), 'x:2').create.NetworkingConfig).to.deep.equal({
      EndpointsConfig: { lan: { Aliases: ['db'], IPAMConfig: { IPv4Address: '10.9.0.5' } } },
    });
  });

  it('sets no networks and no hostname for host networking', () => {
    const c = container();
    c.HostConfig.NetworkMode = 'host';
    c.NetworkSettings = { Networks: { host: { Aliases: null } } };
    const { create, connect } = recreateSpec(c, image(), 'x:2');
    expect(create).to.not.have.property('NetworkingConfig');
    expect(create).to.not.have.property('Hostname');
    expect(connect).to.deep.equal([]);
  });

  it('rewrites legacy links from inspect form to create form', () => {
    const c = container();
    c.HostConfig.Links = ['/db:/caisson-rt-fixture/database'];
    expect((recreateSpec(c, image(), 'x:2').create.HostConfig as { Links: string[] }).Links).to.deep.equal(['db:database']);
  });

  it('keeps an empty Cmd that differs from the image\'s only together with the entrypoint', () => {
    const c = container();
    const img = image();
    c.Config.Entrypoint = img.Entrypoint ?? null;
    c.Config.Cmd = null;
    const { create } = recreateSpec(c, img, 'x:2');
    expect(create.Entrypoint).to.deep.equal([]);
    expect(create.Cmd).to.deep.equal([]);
  });
});
