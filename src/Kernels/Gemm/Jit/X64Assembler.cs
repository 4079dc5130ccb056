namespace Quantize.Kernels.Gemm.Jit;

/// <summary>A general-purpose x86-64 register (its encoding number).</summary>
internal enum Gpr : byte
{
    Rax = 0, Rcx = 1, Rdx = 2, Rbx = 3, Rsp = 4, Rbp = 5, Rsi = 6, Rdi = 7,
    R8 = 8, R9 = 9, R10 = 10, R11 = 11, R12 = 12, R13 = 13, R14 = 14, R15 = 15,
}

/// <summary>A memory operand <c>[base + index * scale + displacement]</c>; no index when <see cref="Index"/> is null.</summary>
internal readonly record struct Memory(Gpr Base, Gpr? Index = null, int Scale = 1, int Displacement = 0);

/// <summary>
/// The few x86-64 instructions the AVX-512 VNNI GEMM kernel needs, encoded from the Intel SDM (volume 2: REX, ModRM/SIB,
/// and the EVEX prefix with its compressed 8-bit displacement). .NET 10 has no intrinsic for the EVEX form of
/// <c>vpdpbusd</c>, so this kernel is assembled at run time (as oneDNN does with its JIT kernels).
/// Vector registers are zmm0..zmm31 by number. Only what the kernel uses is here; every form is checked
/// byte for byte against the GNU assembler in the tests.
/// </summary>
internal sealed class X64Assembler
{
    private readonly List<byte> code = [];

    /// <summary>The bytes emitted so far.</summary>
    public byte[] ToArray() => [.. code];

    /// <summary>Current offset: a branch target for <see cref="JumpIfNotZero"/>.</summary>
    public int Position => code.Count;

    // ---- general-purpose instructions (REX.W forms) ----

    /// <summary><c>mov dst, src</c> (64-bit registers).</summary>
    public void Move(Gpr destination, Gpr source)
    {
        Rex(w: true, reg: (int)source, index: 0, rm: (int)destination);
        code.Add(0x89);
        ModRmRegister((int)source, (int)destination);
    }

    /// <summary><c>mov dst, qword [memory]</c>.</summary>
    public void Load(Gpr destination, Memory memory)
    {
        Rex(w: true, reg: (int)destination, index: (int)(memory.Index ?? 0), rm: (int)memory.Base);
        code.Add(0x8B);
        ModRmMemory((int)destination, memory, displacementScale: 1);
    }

    /// <summary><c>lea dst, [memory]</c>.</summary>
    public void LoadAddress(Gpr destination, Memory memory)
    {
        Rex(w: true, reg: (int)destination, index: (int)(memory.Index ?? 0), rm: (int)memory.Base);
        code.Add(0x8D);
        ModRmMemory((int)destination, memory, displacementScale: 1);
    }

    /// <summary><c>add dst, src</c> (64-bit registers).</summary>
    public void Add(Gpr destination, Gpr source)
    {
        Rex(w: true, reg: (int)source, index: 0, rm: (int)destination);
        code.Add(0x01);
        ModRmRegister((int)source, (int)destination);
    }

    /// <summary><c>add dst, imm8</c> (sign-extended 8-bit immediate).</summary>
    public void Add(Gpr destination, sbyte immediate)
    {
        Rex(w: true, reg: 0, index: 0, rm: (int)destination);
        code.Add(0x83);
        ModRmRegister(0, (int)destination);
        code.Add((byte)immediate);
    }

    /// <summary><c>dec dst</c> (64-bit).</summary>
    public void Decrement(Gpr destination)
    {
        Rex(w: true, reg: 0, index: 0, rm: (int)destination);
        code.Add(0xFF);
        ModRmRegister(1, (int)destination);
    }

    /// <summary><c>test a, b</c> (64-bit registers): ZF when <c>a &amp; b</c> is zero.</summary>
    public void Test(Gpr left, Gpr right)
    {
        Rex(w: true, reg: (int)right, index: 0, rm: (int)left);
        code.Add(0x85);
        ModRmRegister((int)right, (int)left);
    }

    /// <summary>
    /// <c>jz</c> forward with a 32-bit displacement, its target not yet known: returns where the displacement is, for
    /// <see cref="SetJumpTarget"/>.
    /// </summary>
    public int JumpIfZeroForward()
    {
        code.Add(0x0F);
        code.Add(0x84);
        Int32(0);
        return code.Count - 4;
    }

    /// <summary>Points the forward jump whose displacement is at <paramref name="displacementAt"/> to <see cref="Position"/>.</summary>
    public void SetJumpTarget(int displacementAt)
    {
        int displacement = code.Count - (displacementAt + 4);
        for (int i = 0; i < 4; i++) code[displacementAt + i] = (byte)(displacement >> (8 * i));
    }

    /// <summary><c>jnz target</c> with a 32-bit displacement, to an earlier or later <see cref="Position"/>.</summary>
    public void JumpIfNotZero(int target)
    {
        code.Add(0x0F);
        code.Add(0x85);
        int displacement = target - (code.Count + 4);
        Int32(displacement);
    }

    /// <summary><c>prefetcht0 [memory]</c>: fetch the line into every cache level.</summary>
    public void Prefetch(Memory memory) => Prefetch(0x18, 1, memory);

    /// <summary>
    /// <c>prefetchw [memory]</c>: fetch the line in a writable state, so a later store does not wait for it (PRFCHW, which
    /// every AVX-512 VNNI CPU has; older Intel CPUs run the opcode as a no-op).
    /// </summary>
    public void PrefetchForWrite(Memory memory) => Prefetch(0x0D, 1, memory);

    private void Prefetch(byte opcode, int hint, Memory memory)
    {
        int baseRegister = (int)memory.Base, index = (int)(memory.Index ?? 0);
        if (baseRegister >= 8 || index >= 8) Rex(w: false, reg: 0, index: index, rm: baseRegister);
        code.Add(0x0F);
        code.Add(opcode);
        ModRmMemory(hint, memory, displacementScale: 1);
    }

    /// <summary><c>push src</c> (64-bit): saves a callee-saved register.</summary>
    public void Push(Gpr source)
    {
        if ((int)source >= 8) code.Add(0x41); // REX.B
        code.Add((byte)(0x50 + ((int)source & 7)));
    }

    /// <summary><c>pop dst</c> (64-bit).</summary>
    public void Pop(Gpr destination)
    {
        if ((int)destination >= 8) code.Add(0x41);
        code.Add((byte)(0x58 + ((int)destination & 7)));
    }

    /// <summary><c>ret</c>.</summary>
    public void Return() => code.Add(0xC3);

    /// <summary><c>vzeroupper</c> (VEX): leave no dirty upper halves for SSE code after us.</summary>
    public void ZeroUpper()
    {
        code.Add(0xC5);
        code.Add(0xF8);
        code.Add(0x77);
    }

    // ---- AVX-512 (EVEX.512) instructions ----

    /// <summary><c>vmovdqu32 zmm, [memory]</c>.</summary>
    public void LoadVector(int destination, Memory memory) => Evex(Prefix.F3, Map.M0F, 0x6F, destination, 0, memory, 64);

    /// <summary><c>vmovdqu32 [memory], zmm</c>.</summary>
    public void StoreVector(Memory memory, int source) => Evex(Prefix.F3, Map.M0F, 0x7F, source, 0, memory, 64);

    /// <summary><c>vpbroadcastd zmm, dword [memory]</c>.</summary>
    public void BroadcastInt32(int destination, Memory memory) => Evex(Prefix.P66, Map.M0F38, 0x58, destination, 0, memory, 4);

    /// <summary><c>vpdpbusd acc, u8, s8</c>: per int32 lane, acc += sum of four u8 x s8 products (no saturation).</summary>
    public void DotProductUnsignedSigned(int accumulator, int unsignedBytes, int signedBytes) =>
        EvexRegisters(Prefix.P66, Map.M0F38, 0x50, accumulator, unsignedBytes, signedBytes);

    /// <summary><c>vpxord dst, a, b</c>.</summary>
    public void Xor(int destination, int left, int right) => EvexRegisters(Prefix.P66, Map.M0F, 0xEF, destination, left, right);

    /// <summary><c>vpaddd dst, left, [memory]</c>.</summary>
    public void AddInt32(int destination, int left, Memory memory) => Evex(Prefix.P66, Map.M0F, 0xFE, destination, left, memory, 64);

    /// <summary><c>vpaddd dst, left, right</c>.</summary>
    public void AddInt32(int destination, int left, int right) => EvexRegisters(Prefix.P66, Map.M0F, 0xFE, destination, left, right);

    /// <summary><c>vpmulld dst, left, [memory]</c> (the low 32 bits of each product).</summary>
    public void MultiplyInt32(int destination, int left, Memory memory) => Evex(Prefix.P66, Map.M0F38, 0x40, destination, left, memory, 64);

    /// <summary><c>vcvtdq2ps dst, src</c> (int32 to float, rounding to nearest even).</summary>
    public void ConvertToSingle(int destination, int source) => EvexRegisters(Prefix.None, Map.M0F, 0x5B, destination, 0, source);

    /// <summary><c>vmulps dst, left, [memory]</c>.</summary>
    public void MultiplySingle(int destination, int left, Memory memory) => Evex(Prefix.None, Map.M0F, 0x59, destination, left, memory, 64);

    /// <summary><c>vaddps dst, left, [memory]</c>.</summary>
    public void AddSingle(int destination, int left, Memory memory) => Evex(Prefix.None, Map.M0F, 0x58, destination, left, memory, 64);

    private enum Prefix { None = 0, P66 = 1, F3 = 2, F2 = 3 }

    private enum Map { M0F = 1, M0F38 = 2, M0F3A = 3 }

    /// <summary>EVEX.512.W0 with a memory operand; <paramref name="vvvv"/> is the second source (0 when unused: encoded as 1111).</summary>
    private void Evex(Prefix prefix, Map map, byte opcode, int reg, int vvvv, Memory memory, int tupleBytes)
    {
        int baseRegister = (int)memory.Base, index = (int)(memory.Index ?? 0);
        EvexPrefix(prefix, map, reg, vvvv, rmHigh: (baseRegister >> 3) & 1, xHigh: (index >> 3) & 1);
        code.Add(opcode);
        ModRmMemory(reg & 7, memory, tupleBytes);
    }

    /// <summary>EVEX.512.W0 with three vector registers: reg, vvvv and rm.</summary>
    private void EvexRegisters(Prefix prefix, Map map, byte opcode, int reg, int vvvv, int rm)
    {
        // For a register rm, EVEX.B extends it to 8..15 and EVEX.X to 16..31.
        EvexPrefix(prefix, map, reg, vvvv, rmHigh: (rm >> 3) & 1, xHigh: (rm >> 4) & 1);
        code.Add(opcode);
        ModRmRegister(reg & 7, rm & 7);
    }

    private void EvexPrefix(Prefix prefix, Map map, int reg, int vvvv, int rmHigh, int xHigh)
    {
        code.Add(0x62);
        // P0: R X B R' 0 0 m m, the four register-extension bits inverted.
        int p0 = ((~reg >> 3) & 1) << 7 | (~xHigh & 1) << 6 | (~rmHigh & 1) << 5 | ((~reg >> 4) & 1) << 4 | (int)map;
        // P1: W vvvv 1 pp, vvvv inverted (W0).
        int p1 = (~vvvv & 0xF) << 3 | 1 << 2 | (int)prefix;
        // P2: z L'L b V' aaa: 512-bit (L'L = 10), no broadcast, no mask, V' inverted.
        int p2 = 0b10 << 5 | ((~vvvv >> 4) & 1) << 3;
        code.Add((byte)p0);
        code.Add((byte)p1);
        code.Add((byte)p2);
    }

    private void Rex(bool w, int reg, int index, int rm)
    {
        code.Add((byte)(0x40 | (w ? 8 : 0) | ((reg >> 3) & 1) << 2 | ((index >> 3) & 1) << 1 | ((rm >> 3) & 1)));
    }

    private void ModRmRegister(int reg, int rm) => code.Add((byte)(0xC0 | (reg & 7) << 3 | (rm & 7)));

    /// <summary>
    /// ModRM (and SIB, displacement) for a memory operand. An EVEX instruction scales an 8-bit displacement by the
    /// operand's size (<paramref name="displacementScale"/>); legacy instructions pass 1.
    /// </summary>
    private void ModRmMemory(int reg, Memory memory, int displacementScale)
    {
        int baseLow = (int)memory.Base & 7;
        bool sib = memory.Index is not null || baseLow == 4; // rsp / r12 as base need a SIB byte
        int d = memory.Displacement;
        // mod 00 with base rbp/r13 means RIP-relative or disp32: give those bases an explicit zero displacement.
        int mod;
        if (d == 0 && baseLow != 5) mod = 0;
        else if (d % displacementScale == 0 && d / displacementScale is >= -128 and <= 127) mod = 1;
        else mod = 2;
        code.Add((byte)(mod << 6 | (reg & 7) << 3 | (sib ? 4 : baseLow)));
        if (sib)
        {
            int scaleBits = memory.Scale switch { 1 => 0, 2 => 1, 4 => 2, 8 => 3, _ => throw new ArgumentException("Scale must be 1, 2, 4 or 8.") };
            int index = memory.Index is { } i ? (int)i & 7 : 4; // 100 without REX.X/EVEX.X: no index
            if (memory.Index == Gpr.Rsp) throw new ArgumentException("rsp cannot be an index.");
            code.Add((byte)(scaleBits << 6 | index << 3 | baseLow));
        }
        if (mod == 1) code.Add((byte)(sbyte)(d / displacementScale));
        else if (mod == 2) Int32(d);
    }

    private void Int32(int value)
    {
        code.Add((byte)value);
        code.Add((byte)(value >> 8));
        code.Add((byte)(value >> 16));
        code.Add((byte)(value >> 24));
    }
}
