/**
 * Looks at an LMDB file before lmdb-js maps it: LMDB trusts the file, and a page read past its
 * end kills the process (SIGBUS), a garbage file crashed it with a segfault.
 *
 * The file is as long as the pages LMDB ever wrote, which is not what the newest meta page's last
 * page number says: a commit that takes new pages at the end and frees them again before it ends
 * (the pages of a sub-database emptied by a trim) counts them in `last page` and never writes them,
 * and LMDB documents that "the file may be shorter if the freeDB lists the final pages". So the
 * check follows the trees of the newest commit instead: every page it points to was written, and
 * must be in the file. Read are the branch pages of each tree, and the leaves of the main tree
 * (the named sub-databases' roots) and of a tree with large values (where their overflow pages
 * are); other leaves are counted by the branch pointing to them. Free pages past the end are
 * never read, so missing they are harmless; damage inside a page is not seen.
 *
 * Format as lmdb-js 3 writes it (its LMDB 1.0 fork, 64-bit page numbers): a page starts with a
 * 24-byte header (page number at 0, flags at 18, `lower` at 20), then 2-byte node offsets counted
 * from the header's end; a node is lo, hi, flags, key size (2 bytes each), key, data; a branch
 * node's child is lo | hi << 16 | flags << 32. A meta page holds, after the header, magic
 * 0xBEEFC0DE, version 2, ..., the free and main trees (48 bytes each: page size at 48, root at
 * 88 and 136), the last page at 144, the transaction id at 152.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

const HEADER = 24;
const P_BRANCH = 0x01;
const P_LEAF = 0x02;
const P_META = 0x08;
const F_BIGDATA = 0x01;
const F_SUBDATA = 0x02;
/** an empty tree's root */
const NO_PAGE = 0xffff_ffff_ffff_ffffn;

interface Tree {
  root: bigint;
  /** levels, the root's included: 1 when the root is a leaf */
  depth: number;
  /** its leaves are read: the main tree (sub-database roots), a tree with overflow pages (where they are) */
  leaves: boolean;
}

/** A tree's 48-byte record (in a meta page, or a sub-database's in a leaf): depth at 6, overflow pages at 24, root at 40. */
function treeAt(page: Buffer, at: number, main = at === 96): Tree {
  return { root: page.readBigUInt64LE(at + 40), depth: page.readUInt16LE(at + 6), leaves: main || page.readBigUInt64LE(at + 24) > 0n };
}

/**
 * Throws an Error saying what is wrong when `file` is not an LMDB file, is cut short of a page
 * its newest commit points to, or holds a tree page that is not one; a missing or empty file passes
 * (a new store).
 */
export function checkLmdbFile(file: string): void {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // a new store
    throw err;
  }
  try {
    const size = fstatSync(fd).size;
    if (size === 0) return;
    const first = Buffer.alloc(160);
    if (readSync(fd, first, 0, 160, 0) < 160) throw new Error(`${size} bytes: shorter than one page`);
    const pageSize = first.readUInt32LE(48);
    if (pageSize < 512 || pageSize > 65_536 || (pageSize & (pageSize - 1)) !== 0) throw new Error('no valid page size in the first meta page');
    const second = Buffer.alloc(160);
    if (readSync(fd, second, 0, 160, pageSize) < 160) throw new Error(`${size} bytes: shorter than its two meta pages`);
    const metas = [first, second].map((page, i) => {
      if (page.readUInt32LE(24) !== 0xbeefc0de || page.readUInt32LE(28) !== 2 || (page.readUInt16LE(18) & P_META) === 0) throw new Error(`meta page ${i} is not an LMDB meta page`);
      return { page, txn: page.readBigUInt64LE(152) };
    });
    const newest = (metas[0]!.txn >= metas[1]!.txn ? metas[0]! : metas[1]!).page;
    const trees = [48, 96].map((at) => treeAt(newest, at));
    const highest = walkTrees(fd, pageSize, size, newest.readBigUInt64LE(144), trees[0]!, trees[1]!);
    const needed = (highest + 1n) * BigInt(pageSize);
    if (BigInt(size) < needed) throw new Error(`truncated: ${size} bytes, its last commit needs ${needed}`);
  } finally {
    closeSync(fd);
  }
}

/**
 * Follows the free tree, the main tree and the named sub-databases the main tree's leaves hold;
 * returns the highest page number any of them points to (pages past the file's end are counted,
 * not read).
 */
function walkTrees(fd: number, pageSize: number, size: number, lastPage: bigint, free: Tree, main: Tree): bigint {
  const inFile = BigInt(Math.floor(size / pageSize));
  const page = Buffer.alloc(pageSize);
  const seen = new Set<bigint>();
  let highest = 1n; // the two meta pages
  const point = (n: bigint, what: string): boolean => {
    if (n > lastPage) throw new Error(`${what} points to page ${n}, past its last page ${lastPage}`);
    if (n > highest) highest = n;
    return n < inFile;
  };
  // pages to read: [page, its tree, levels below it (0: a leaf)]
  const queue: Array<[bigint, Tree, number]> = [];
  const tree = (t: Tree, what: string) => {
    if (t.root !== NO_PAGE && point(t.root, what) && (t.leaves || t.depth > 1)) queue.push([t.root, t, t.depth - 1]);
  };
  tree(free, 'the free tree');
  tree(main, 'the main tree');
  for (let next = queue.pop(); next; next = queue.pop()) {
    const [n, t, below] = next;
    if (seen.has(n)) throw new Error(`page ${n} is in a tree twice`);
    seen.add(n);
    readSync(fd, page, 0, pageSize, Number(n) * pageSize);
    const flags = page.readUInt16LE(18);
    const nodes = page.readUInt16LE(20) >> 1;
    const notATreePage = () => new Error(`page ${n} is not a tree page`);
    if (page.readBigUInt64LE(0) !== n || (flags & (below > 0 ? P_BRANCH : P_LEAF)) === 0 || HEADER + nodes * 2 > pageSize) throw notATreePage();
    for (let i = 0; i < nodes; i++) {
      const at = HEADER + page.readUInt16LE(HEADER + i * 2);
      if (at + 8 > pageSize) throw notATreePage();
      const nodeFlags = page.readUInt16LE(at + 4);
      if (below > 0) {
        const child = BigInt(page.readUInt16LE(at)) | (BigInt(page.readUInt16LE(at + 2)) << 16n) | (BigInt(nodeFlags) << 32n);
        // a leaf not read is counted by the branch pointing to it
        if (point(child, `page ${n}`) && (t.leaves || below > 1)) queue.push([child, t, below - 1]);
        continue;
      }
      const data = at + 8 + page.readUInt16LE(at + 6);
      if (nodeFlags & F_BIGDATA) {
        if (data + 8 > pageSize) throw notATreePage();
        // a value of `size` bytes on overflow pages from this one: its last page counts
        const bytes = page.readUInt16LE(at) | (page.readUInt16LE(at + 2) << 16);
        point(page.readBigUInt64LE(data) + BigInt(Math.ceil((HEADER + bytes) / pageSize) - 1), `page ${n}`);
      } else if (nodeFlags & F_SUBDATA && t === main) {
        if (data + 48 > pageSize) throw notATreePage();
        tree(treeAt(page, data, false), `a sub-database on page ${n}`);
      }
    }
  }
  return highest;
}
