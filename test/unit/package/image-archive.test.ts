// The rules for image.tar (crafted archives, no engine): exactly the layouts docker save
// writes, and what the archive pins (config digest, diff IDs, platform, settings, names).
import assert from 'node:assert/strict';
import { assertFields } from '../../support/assert.js';
import { createHash } from 'node:crypto';
import { ImageArchiveReader, judgeLoadedImage, MAX_IMAGES, type ImageArchiveInfo, type LoadedImage } from '../../../agent/package/image-archive.js';
import { craftLayer, craftTar, dataOf, legacyImage, multiImageArchive, multiImageEntries, multiPlatformOciImage, ociImage, twoImageLegacyArchive, type CraftEntry, type CraftedImage } from '../../support/image-archives.js';

const REF = 'example/app:1.2.3';

/** Feed the archive in small pieces, as a stream would; `info` is the only image, if one. */
function read(tar: Buffer): { info?: ImageArchiveInfo; images?: ImageArchiveInfo[]; problem?: string } {
  const r = new ImageArchiveReader();
  for (let i = 0; i < tar.length; i += 700) r.write(tar.subarray(i, i + 700));
  const { images, problem } = r.finish();
  if (!images) return { problem: problem! };
  return images.length === 1 ? { images, info: images[0]! } : { images };
}

const problemOf = (entries: CraftEntry[]): string | undefined => read(craftTar(entries)).problem;
const replace = (img: CraftedImage, name: string, by: CraftEntry[]): CraftEntry[] =>
  img.entries.flatMap((e) => (e.name === name ? by : [e]));
const manifestJsonOf = (img: CraftedImage): string => String((img.entries.find((e) => e.name === 'manifest.json') as { data: string }).data);

describe('image archive rules (image.tar)', () => {
  describe('accepts what docker save writes', () => {
    it('the legacy layout, with the relative link docker save writes for a repeated layer', () => {
      const same = craftLayer('same.txt', 'same\n');
      const img = legacyImage({ ref: REF, layers: [craftLayer('a.txt', 'a\n'), same, same] });
      assert.equal(img.entries.filter((e) => e.type === 'symlink').length, 1);
      const { info, problem } = read(craftTar(img.entries));
      assert.equal(problem, undefined);
      assertFields(info, { imageId: img.configDigest, repoTags: [REF], layout: 'legacy', diffIds: img.diffIds, os: 'linux', architecture: 'amd64', indexNames: [] });
      assert.deepEqual(info!.runtimeConfig, { Env: ['PATH=/bin'], Cmd: ['/bin/true'] });
    });

    it('the OCI layout (index.json, blobs/sha256, manifest.json, oci-layout) and the names index.json gives', () => {
      const img = ociImage({ ref: REF });
      const { info, problem } = read(craftTar(img.entries));
      assert.equal(problem, undefined);
      assertFields(info, { imageId: img.configDigest, repoTags: [REF], layout: 'oci', diffIds: img.diffIds, indexNames: ['docker.io/example/app:1.2.3'] });
    });

    for (const [layout, craft] of [['legacy', legacyImage], ['OCI', ociImage]] as const) {
      it(`several images in the ${layout} layout, each with its config digest, diff IDs, tags and names, in manifest.json's order`, () => {
        const base = craftLayer('base.txt', 'shared base\n');
        const imgs = ['db', 'api', 'worker'].map((s) => craft({ ref: `example/${s}:2.1.0`, layers: [base, craftLayer(`${s}.txt`, `${s}\n`)], cmd: [`/bin/${s}`] }));
        const { images, problem } = read(multiImageArchive(imgs));
        assert.equal(problem, undefined);
        assert.deepEqual(images!.map((i) => i.imageId), imgs.map((i) => i.configDigest));
        images!.forEach((info, n) => {
          const s = ['db', 'api', 'worker'][n]!;
          assertFields(info, { repoTags: [`example/${s}:2.1.0`], diffIds: imgs[n]!.diffIds, layout: layout === 'OCI' ? 'oci' : 'legacy' });
          assert.deepEqual(info.indexNames, layout === 'OCI' ? [`docker.io/example/${s}:2.1.0`] : []);
          assert.deepEqual(info.runtimeConfig, { Env: ['PATH=/bin'], Cmd: [`/bin/${s}`] });
        });
        // the shared base layer is the first diff ID of each
        assert.equal(new Set(images!.map((i) => i.diffIds[0])).size, 1);
      });
    }

    it('an untagged image (RepoTags null) as having no tags', () => {
      assert.deepEqual(read(craftTar(legacyImage().entries)).info?.repoTags, []);
    });
  });

  describe('rejects anything else', () => {
    const legacy = (): CraftedImage => legacyImage({ ref: REF });
    const oci = (): CraftedImage => ociImage({ ref: REF });
    const cases: Array<[string, () => CraftEntry[], RegExp]> = [
      ['a second manifest.json', () => [...legacy().entries, { name: 'manifest.json', data: '[]' }], /appears twice/],
      ['a re-spelled manifest.json (x/../manifest.json)', () => [...legacy().entries, { name: 'x/../manifest.json', data: '[]' }], /docker save does not write/],
      ['a re-spelled manifest.json (./manifest.json)', () => [...legacy().entries, { name: './manifest.json', data: '[]' }], /docker save does not write/],
      ['a re-spelled index.json (blobs/../index.json)', () => [...oci().entries, { name: 'blobs/../index.json', data: '{}' }], /docker save does not write/],
      ['a double slash (blobs//sha256/…)', () => [...oci().entries, { name: `blobs//sha256/${'a'.repeat(64)}`, data: 'x' }], /docker save does not write/],
      ['a link manifest.json -> evil.json', () => replace(legacy(), 'manifest.json', [{ name: 'manifest.json', type: 'symlink', target: 'evil.json' }]), /is a link/],
      ['a link index.json -> evil.json', () => replace(oci(), 'index.json', [{ name: 'index.json', type: 'symlink', target: 'evil.json' }]), /is a link/],
      ['an unknown file (evil.json)', () => [...legacy().entries, { name: 'evil.json', data: '[]' }], /"evil\.json", which docker save does not write/],
      ['an absolute layer link', () => {
        const img = legacyImage({ ref: REF, layers: [craftLayer('a', 'a'), craftLayer('b', 'b')] });
        const second = img.entries.filter((e) => e.name.endsWith('/layer.tar'))[1]!.name;
        return replace(img, second, [{ name: second, type: 'symlink', target: '/etc/shadow' }]);
      }, /only \.\.\/<layer>\/layer\.tar is allowed/],
      ['an escaping layer link (../../x)', () => {
        const img = legacyImage({ ref: REF, layers: [craftLayer('a', 'a'), craftLayer('b', 'b')] });
        const second = img.entries.filter((e) => e.name.endsWith('/layer.tar'))[1]!.name;
        return replace(img, second, [{ name: second, type: 'symlink', target: `../../${'a'.repeat(64)}/layer.tar` }]);
      }, /only \.\.\/<layer>\/layer\.tar is allowed/],
      ['a layer link to a layer that is not in the archive', () => {
        const img = legacyImage({ ref: REF, layers: [craftLayer('a', 'a'), craftLayer('b', 'b')] });
        const second = img.entries.filter((e) => e.name.endsWith('/layer.tar'))[1]!.name;
        return replace(img, second, [{ name: second, type: 'symlink', target: `../${'f'.repeat(64)}/layer.tar` }]);
      }, /which is not a layer in it/],
      ['a hard link', () => {
        const img = legacyImage({ ref: REF, layers: [craftLayer('a', 'a'), craftLayer('b', 'b')] });
        const [first, second] = img.entries.filter((e) => e.name.endsWith('/layer.tar')).map((e) => e.name);
        return replace(img, second!, [{ name: second!, type: 'hardlink', target: first! }]);
      }, /is a link|docker save does not write there/],
      ['a link in the OCI layout (blobs are never links)', () => {
        const img = oci();
        const blob = img.entries.find((e) => e.name.startsWith('blobs/sha256/'))!.name;
        return [...img.entries.filter((e) => e.name !== blob), { name: blob, type: 'symlink', target: '../../manifest.json' }];
      }, /is a link/],
      ['a FIFO', () => [...legacy().entries, { name: 'repositories', type: 'fifo' }], /docker save does not write there|appears twice/],
      ['a pax path that disagrees with the header name', () => [
        ...legacy().entries.filter((e) => e.name !== 'manifest.json'),
        { name: 'manifest.json', type: 'pax-file', paxPath: 'evil.json', data: manifestJsonOf(legacy()) },
      ], /names itself/],
      ['the legacy and the OCI layout mixed', () => [...legacy().entries, { name: 'blobs/', type: 'dir' }], /mixes the legacy and the OCI layout/],
      ['an OCI layout without index.json', () => oci().entries.filter((e) => e.name !== 'index.json'), /no index\.json/],
      ['no manifest.json', () => legacy().entries.filter((e) => e.name !== 'manifest.json'), /no manifest\.json/],
      ['a config that is not what its name says', () => {
        const img = legacy();
        const cfg = img.entries.find((e) => /^[0-9a-f]{64}\.json$/.test(e.name))!.name;
        return replace(img, cfg, [{ name: cfg, data: JSON.stringify({ ...img.config, config: { Cmd: ['/bin/evil'] } }) }]);
      }, /does not have that digest/],
      ['a config whose diff IDs do not match the layers', () => {
        const img = legacy();
        const bad = JSON.stringify({ ...img.config, rootfs: { type: 'layers', diff_ids: [] } });
        const hex = createHash('sha256').update(bad).digest('hex');
        const cfg = img.entries.find((e) => /^[0-9a-f]{64}\.json$/.test(e.name))!.name;
        const doc = JSON.parse(manifestJsonOf(img));
        doc[0].Config = `${hex}.json`;
        return [...replace(img, cfg, [{ name: `${hex}.json`, data: bad }]).filter((e) => e.name !== 'manifest.json'), { name: 'manifest.json', data: JSON.stringify(doc) }];
      }, /lists 0 layers but manifest\.json 1/],
      ['a layer manifest.json names that is not in the archive', () => {
        const img = legacy();
        const doc = JSON.parse(manifestJsonOf(img));
        doc[0].Layers = [`${'e'.repeat(64)}/layer.tar`];
        return [...img.entries.filter((e) => e.name !== 'manifest.json'), { name: 'manifest.json', data: JSON.stringify(doc) }];
      }, /names the layer/],
      ['an index.json that leads to a second image', () => {
        const a = oci();
        const b = ociImage({ ref: 'busybox:latest', layers: [craftLayer('b', 'b')], cmd: ['/bin/false'] });
        const bIndex = JSON.parse(String((b.entries.find((e) => e.name === 'index.json') as { data: string }).data));
        const aIndex = JSON.parse(String((a.entries.find((e) => e.name === 'index.json') as { data: string }).data));
        aIndex.manifests.push(...bIndex.manifests);
        const bBlobs = b.entries.filter((e) => e.name.length > 'blobs/sha256/'.length && e.name.startsWith('blobs/sha256/'));
        return [...replace(a, 'index.json', [{ name: 'index.json', data: JSON.stringify(aIndex) }]), ...bBlobs];
      }, /leads to a second image for [^(]*\(config sha256:[0-9a-f]{12}\) that manifest\.json does not list/],
    ];
    it('an image manifest.json lists twice', () => {
      const img = legacy();
      const doc = JSON.parse(manifestJsonOf(img));
      const twice = [...img.entries.filter((e) => e.name !== 'manifest.json'), { name: 'manifest.json', data: JSON.stringify([doc[0], { ...doc[0], RepoTags: ['example/other:1'] }]) }];
      assert.match(problemOf(twice) ?? '', /lists the image sha256:[0-9a-f]{12} twice/);
    });
    it('one tag on two images', () => {
      const a = legacyImage({ ref: REF, layers: [craftLayer('a', 'a')] });
      const b = legacyImage({ ref: REF, layers: [craftLayer('b', 'b')] });
      assert.match(read(multiImageArchive([a, b])).problem ?? '', /gives the tag "example\/app:1\.2\.3" to two images/);
    });
    it(`more than ${MAX_IMAGES} images`, () => {
      const many = Array.from({ length: MAX_IMAGES + 1 }, (_, i) => legacyImage({ ref: `example/s${i}:1`, layers: [craftLayer('x', `${i}`)] }));
      assert.match(read(multiImageArchive(many)).problem ?? '', new RegExp(`holds ${MAX_IMAGES + 1} images \\(limit ${MAX_IMAGES}\\)`));
    });
    it('an empty manifest.json', () => {
      const img = legacy();
      assert.match(problemOf([...img.entries.filter((e) => e.name !== 'manifest.json'), { name: 'manifest.json', data: '[]' }]) ?? '', /lists no image/);
    });
    it('an OCI archive whose index.json leads to only one of two images', () => {
      const a = ociImage({ ref: REF, layers: [craftLayer('a', 'a')] });
      const b = ociImage({ ref: 'example/b:1', layers: [craftLayer('b', 'b')], cmd: ['/bin/b'] });
      const tar = multiImageArchive([a, b]);
      const onlyA = multiImageEntries([a, b]).map((e) => (e.name === 'index.json' ? { name: e.name, data: dataOf(a, 'index.json') } : e));
      assert.equal(read(tar).problem, undefined);
      assert.match(read(craftTar(onlyA)).problem ?? '', /leads to no manifest of the image sha256:/);
    });
    for (const [what, make, why] of cases) {
      it(what, () => {
        const problem = problemOf(make());
        assert.equal(typeof problem, 'string', what);
        assert.match(problem ?? '', why, what);
      });
    }
  });

  describe('multi-platform indexes (docker save of a multi-platform image, containerd store)', () => {
    const amd64 = { os: 'linux', architecture: 'amd64' };
    const arm64 = { os: 'linux', architecture: 'arm64', variant: 'v8' };
    const images = [
      { platform: amd64, layers: [craftLayer('a', 'amd64\n')] },
      { platform: arm64, layers: [craftLayer('a', 'arm64\n')], cmd: ['/bin/other'] },
    ];
    const mp = (over: Partial<Parameters<typeof multiPlatformOciImage>[0]> = {}) => multiPlatformOciImage({ ref: REF, images, ...over });

    it('pins the image manifest.json names when the others are for other platforms, saved or not', () => {
      for (const saved of [undefined, [0]]) {
        const img = mp({ saved });
        const { info, problem } = read(craftTar(img.entries));
        assert.equal(problem, undefined, `saved ${saved}`);
        assertFields(info, { imageId: img.configDigest, diffIds: img.diffIds, os: 'linux', architecture: 'amd64', indexNames: ['docker.io/example/app:1.2.3'] });
      }
    });
    it('refuses a second image for the same platform, or one that names no platform', () => {
      const same = mp({ images: [images[0]!, { ...images[1]!, platform: amd64 }] });
      assert.match(read(craftTar(same.entries)).problem ?? '', /second image for linux\/amd64/);
      const unnamed = mp({ declared: [amd64, undefined] });
      assert.match(read(craftTar(unnamed.entries)).problem ?? '', /second image for no platform/);
    });
    it('refuses an index that lists the pinned image under another platform than its config says', () => {
      assert.match(read(craftTar(mp({ declared: [arm64, amd64] }).entries)).problem ?? '', /lists the image for linux\/arm64\/v8, but its config is for linux\/amd64/);
    });
    it('refuses an index whose saved manifests do not include the pinned one', () => {
      // manifest.json names the amd64 config, its layers are there, but not its manifest
      const img = mp();
      const isPinnedManifest = (e: CraftEntry) => 'data' in e && String(e.data).includes(`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"${img.configDigest}"`);
      assert.equal(img.entries.filter(isPinnedManifest).length, 1);
      assert.match(problemOf(img.entries.filter((e) => !isPinnedManifest(e))) ?? '', /leads to no image manifest in it/);
    });
  });

  describe('judging the loaded image against what the archive pins', () => {
    const { info } = read(craftTar(legacyImage({ ref: REF }).entries));
    const pinned = info!;
    const loaded = (over: Partial<LoadedImage> = {}): LoadedImage => ({
      Id: `sha256:${'9'.repeat(64)}`, // a manifest digest, as on the containerd store
      Os: 'linux',
      Architecture: 'amd64',
      RootFS: { Layers: [...pinned.diffIds] },
      Config: { Env: ['PATH=/bin'], Cmd: ['/bin/true'], Entrypoint: null, Labels: null, WorkingDir: '', OnBuild: null, Volumes: null },
      ...over,
    });

    it('accepts the config digest as the ID (classic store) whatever else is reported', () => {
      assert.equal(judgeLoadedImage({ Id: pinned.imageId }, pinned), undefined);
    });
    it('accepts another ID when the layers, platform and settings are the archive\'s (containerd store)', () => {
      assert.equal(judgeLoadedImage(loaded(), pinned), undefined);
    });
    it('rejects other layers, another platform, other settings', () => {
      assert.match(judgeLoadedImage(loaded({ RootFS: { Layers: [`sha256:${'1'.repeat(64)}`] } }), pinned) ?? '', /layers/);
      assert.match(judgeLoadedImage(loaded({ RootFS: { Layers: [] } }), pinned) ?? '', /layers/);
      assert.match(judgeLoadedImage(loaded({ Architecture: 'arm64' }), pinned) ?? '', /linux\/arm64/);
      assert.match(judgeLoadedImage(loaded({ Config: { Env: ['PATH=/bin'], Cmd: ['/bin/evil'] } }), pinned) ?? '', /Cmd/);
      assert.match(judgeLoadedImage(loaded({ Config: { Env: ['PATH=/bin'], Cmd: ['/bin/true'], Entrypoint: ['/x'] } }), pinned) ?? '', /Entrypoint/);
    });
  });
});
