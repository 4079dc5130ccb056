using Quantize.Kernels.Gemm;
using Quantize.Kernels.Gemm.Jit;

namespace Quantize.Kernels.Tests.Gemm;

/// <summary>
/// The AVX-512 VNNI kernels assembled at run time: every instruction form equals what the GNU assembler (binutils 2.40,
/// <c>as</c> then <c>objdump -d</c>) makes of the same line, and the products equal the 64-bit scalar reference.
/// </summary>
public class Int8VnniKernelTests
{
    public static TheoryData<string, string> Encodings() => new()
    {
        { "mov rax, rdi", "48 89 f8" },
        { "mov r11, r9", "4d 89 cb" },
        { "mov r8, [rax]", "4c 8b 00" },
        { "mov rdx, [rax+40]", "48 8b 50 28" },
        { "mov rcx, [r13]", "49 8b 4d 00" },
        { "mov r9, [rsp+8]", "4c 8b 4c 24 08" },
        { "mov rax, [rbx+1000]", "48 8b 83 e8 03 00 00" },
        { "lea rax, [r10+r10*2]", "4b 8d 04 52" },
        { "lea rax, [rdx+rdx*2]", "48 8d 04 52" },
        { "add rax, rcx", "48 01 c8" },
        { "add r9, r10", "4d 01 d1" },
        { "add r8, 24", "49 83 c0 18" },
        { "add r9, 64", "49 83 c1 40" },
        { "add rsi, -8", "48 83 c6 f8" },
        { "dec r11", "49 ff cb" },
        { "dec rcx", "48 ff c9" },
        { "vzeroupper", "c5 f8 77" },
        { "ret", "c3" },
        { "vmovdqu32 zmm24, [r9]", "62 41 7e 48 6f 01" },
        { "vmovdqu32 zmm25, [r9+r10]", "62 01 7e 48 6f 0c 11" },
        { "vmovdqu32 zmm27, [r9+rax]", "62 41 7e 48 6f 1c 01" },
        { "vmovdqu32 zmm3, [rcx+rdx*2+192]", "62 f1 7e 48 6f 5c 51 03" },
        { "vmovdqu32 zmm31, [r12+100]", "62 41 7e 48 6f bc 24 64 00 00 00" },
        { "vmovdqu32 [rcx], zmm0", "62 f1 7e 48 7f 01" },
        { "vmovdqu32 [rax+rdx*2+64], zmm23", "62 e1 7e 48 7f 7c 50 01" },
        { "vmovdqu32 [r13], zmm17", "62 c1 7e 48 7f 4d 00" },
        { "vpbroadcastd zmm28, [r8]", "62 42 7d 48 58 20" },
        { "vpbroadcastd zmm29, [r8+20]", "62 42 7d 48 58 68 05" },
        { "vpbroadcastd zmm5, [rax+2]", "62 f2 7d 48 58 a8 02 00 00 00" },
        { "vpbroadcastd zmm9, [r15+r14*4+1024]", "62 12 7d 48 58 8c b7 00 04 00 00" },
        { "vpdpbusd zmm0, zmm28, zmm24", "62 92 1d 40 50 c0" },
        { "vpdpbusd zmm23, zmm29, zmm27", "62 82 15 40 50 fb" },
        { "vpdpbusd zmm9, zmm3, zmm12", "62 52 65 48 50 cc" },
        { "vpdpbusd zmm16, zmm1, zmm31", "62 82 75 48 50 c7" },
        { "vpxord zmm0, zmm0, zmm0", "62 f1 7d 48 ef c0" },
        { "vpxord zmm17, zmm17, zmm17", "62 a1 75 40 ef c9" },
        { "vpxord zmm8, zmm30, zmm2", "62 71 0d 40 ef c2" },
        { "vpaddd zmm4, zmm4, [rcx+rdx]", "62 f1 5d 48 fe 24 11" },
        { "vpaddd zmm20, zmm20, [rax+rdx*2+128]", "62 e1 5d 40 fe 64 50 02" },
        { "vpaddd zmm11, zmm6, [rbp]", "62 71 4d 48 fe 5d 00" },
        { "vpaddd zmm3, zmm3, zmm25", "62 91 65 48 fe d9" },
        { "vpaddd zmm20, zmm17, zmm9", "62 c1 75 40 fe e1" },
        { "vpmulld zmm25, zmm24, [r9+64]", "62 42 3d 40 40 49 01" },
        { "vpmulld zmm2, zmm30, [rax]", "62 f2 0d 40 40 10" },
        { "vcvtdq2ps zmm3, zmm3", "62 f1 7c 48 5b db" },
        { "vcvtdq2ps zmm21, zmm8", "62 c1 7c 48 5b e8" },
        { "vmulps zmm7, zmm7, [r11+128]", "62 d1 44 48 59 7b 02" },
        { "vmulps zmm22, zmm1, [rcx+rdx*2]", "62 e1 74 48 59 34 51" },
        { "vaddps zmm7, zmm7, [rsi+192]", "62 f1 44 48 58 7e 03" },
        { "vaddps zmm16, zmm16, [rsi]", "62 e1 7c 40 58 06" },
        { "mov rsi, [rdi+80]", "48 8b 77 50" },
        { "mov r10, [rdi+64]", "4c 8b 57 40" },
        { "vpbroadcastd zmm29, [rcx+rsi*2]", "62 62 7d 48 58 2c 71" },
        { "vpbroadcastd zmm28, [r8+rsi]", "62 42 7d 48 58 24 30" },
        { "add r8, rdx", "49 01 d0" },
        { "add rcx, rdx", "48 01 d1" },
        { "add rcx, r8", "4c 01 c1" },
        { "lea rcx, [rsi+rsi*2]", "48 8d 0c 76" },
        { "mov rsi, [rdi+88]", "48 8b 77 58" },
        { "prefetcht0 [r9+512]", "41 0f 18 89 00 02 00 00" },
        { "prefetcht0 [r9+r10+512]", "43 0f 18 8c 11 00 02 00 00" },
        { "prefetcht0 [r9+r10*2+512]", "43 0f 18 8c 51 00 02 00 00" },
        { "prefetcht0 [r9+rax+512]", "41 0f 18 8c 01 00 02 00 00" },
        { "prefetcht0 [rcx+64]", "0f 18 49 40" },
        { "push rbx", "53" },
        { "push rbp", "55" },
        { "push r12", "41 54" },
        { "push r15", "41 57" },
        { "pop r15", "41 5f" },
        { "pop rbx", "5b" },
        { "pop r13", "41 5d" },
        { "pop rbp", "5d" },
        { "mov r8, r12", "4d 89 e0" },
        { "mov r10, r15", "4d 89 fa" },
        { "mov rcx, r13", "4c 89 e9" },
        { "add r12, rbx", "49 01 dc" },
        { "add r13, rbp", "49 01 ed" },
        { "add r15, 24", "49 83 c7 18" },
        { "dec r14", "49 ff ce" },
        { "test r11, r11", "4d 85 db" },
        { "test rax, rax", "48 85 c0" },
        { "prefetchw [r13]", "41 0f 0d 4d 00" },
        { "prefetchw [r13+rdx+64]", "41 0f 0d 4c 15 40" },
        { "prefetchw [rax+rdx*2+192]", "0f 0d 8c 50 c0 00 00 00" },
        { "prefetchw [rcx]", "0f 0d 09" },
    };

    [Theory]
    [MemberData(nameof(Encodings))]
    public void Each_instruction_form_encodes_as_the_GNU_assembler_does(string instruction, string expected)
    {
        var x = new X64Assembler();
        Emit(x, instruction);
        Assert.Equal(expected, string.Join(' ', x.ToArray().Select(b => b.ToString("x2"))));
    }

    [Fact]
    public void The_loop_branches_back_to_its_first_instruction()
    {
        var x = new X64Assembler();
        x.Return();
        int target = x.Position;
        x.Decrement(Gpr.R11);
        x.JumpIfNotZero(target);
        // jnz rel32 measured from the end of its 6 bytes: back over itself and the 3-byte dec.
        Assert.Equal("c3 49 ff cb 0f 85 f7 ff ff ff", string.Join(' ', x.ToArray().Select(b => b.ToString("x2"))));
    }

    [Fact]
    public void A_forward_jump_lands_where_its_target_is_set()
    {
        var x = new X64Assembler();
        int displacementAt = x.JumpIfZeroForward();
        x.Decrement(Gpr.R11);
        x.SetJumpTarget(displacementAt);
        x.Return();
        // jz rel32 measured from the end of its 6 bytes: over the 3-byte dec to the ret.
        Assert.Equal("0f 84 03 00 00 00 49 ff cb c3", string.Join(' ', x.ToArray().Select(b => b.ToString("x2"))));
    }

    public static TheoryData<int, int, int> Shapes() => new()
    {
        { 1, 1, 1 }, { 1, 4, 64 }, { 6, 5, 16 }, { 6, 64, 64 }, { 7, 31, 33 }, { 12, 128, 48 }, { 13, 129, 65 },
        { 5, 1023, 130 }, { 30, 1025, 100 }, { 97, 2100, 18 }, { 200, 96, 257 }, { 1, 4096, 80 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Products_equal_the_reference_on_one_and_two_threads(int m, int k, int n)
    {
        if (!Int8VnniKernels.IsSupported) Assert.Skip("This CPU (or system) has no AVX-512 VNNI; the AVX2 and scalar twins are tested instead.");
        var random = new Random(m * 7919 + k * 31 + n);
        foreach (var (signedA, signedB) in new[] { (false, true), (false, false), (true, true), (true, false) })
        {
            byte[] a = Bytes(random, m * k);
            byte[] b = Bytes(random, k * n);
            int zpA = random.Next(signedA ? -128 : 0, signedA ? 128 : 256);
            int[] zpB = Enumerable.Range(0, n).Select(_ => random.Next(signedB ? -128 : 0, signedB ? 128 : 256)).ToArray();
            var packed = signedB
                ? PackedInt8Matrix.Pack(b.Select(v => (sbyte)v).ToArray(), k, n, zpB)
                : PackedInt8Matrix.Pack(b, k, n, zpB);
            Assert.Equal(Int8PackFormat.Quads, packed.Format); // VNNI takes every 8-bit B whole
            var expected = new int[m * n];
            Int8Gemm.MultiplyReference(a, signedA, m, k, zpA, b, signedB, n, zpB, expected);
            foreach (int threads in new[] { 1, 2 })
            {
                var actual = new int[m * n];
                Int8Gemm.MultiplyInt32(a, m, zpA, signedA, packed, actual, threads);
                Assert.Equal(expected, actual);
            }
        }
    }

    [Theory]
    [InlineData(13, 2100, 70, 0)]    // two K blocks (partial sums through the edge tiles), symmetric weights
    [InlineData(7, 300, 45, 131)]    // uint8 weights with a zero point: the row factors
    [InlineData(200, 1030, 257, 9)]  // several row blocks and column groups, two K blocks
    [InlineData(1, 64, 1, 200)]
    public void The_in_register_float_stage_equals_the_exact_product_then_the_float_pass(int m, int k, int n, int zeroPointB)
    {
        if (!Int8VnniKernels.IsSupported) Assert.Skip("This CPU (or system) has no AVX-512 VNNI.");
        var random = new Random(m + k + n + zeroPointB);
        byte[] a = Bytes(random, m * k);
        byte[] w = Enumerable.Range(0, k * n).Select(_ => (byte)Math.Clamp(zeroPointB + random.Next(-90, 91), 0, 255)).ToArray();
        var packed = PackedInt8Matrix.Pack(w, k, n, [zeroPointB]);
        float[] scales = Enumerable.Range(0, n).Select(_ => random.NextSingle() * 0.01f).ToArray();
        float[] bias = Enumerable.Range(0, n).Select(_ => random.NextSingle() - 0.5f).ToArray();
        var exact = new int[m * n];
        Int8Gemm.MultiplyReference(a, false, m, k, 17, w, false, n, [zeroPointB], exact);
        var expected = new float[m * n];
        Int8OutputStage.ToFloat(exact, m, n, 0.02f, scales, bias, expected);
        foreach (int threads in new[] { 1, 2 })
        {
            var actual = new float[m * n];
            Int8Gemm.MultiplyToFloat(a, m, 17, 0.02f, packed, scales, bias, actual, threads);
            Assert.Equal(expected, actual); // bitwise: the same integers, then the same multiply and add
            var sums = new int[m * n];
            Int8Gemm.Multiply(a, m, 17, packed, sums, threads);
            Assert.Equal(exact, sums);
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(7)]
    public void One_matrix_serves_calls_with_other_zero_points_and_signs_of_A(int zeroPointB)
    {
        if (!Int8VnniKernels.IsSupported) Assert.Skip("This CPU (or system) has no AVX-512 VNNI.");
        // The per-column terms are kept on the matrix for the last zero point of A: each call must still get its own.
        int m = 13, k = 72, n = 70;
        var random = new Random(5 + zeroPointB);
        byte[] a = Bytes(random, m * k);
        byte[] w = Bytes(random, k * n);
        var packed = PackedInt8Matrix.Pack(w.Select(v => (sbyte)v).ToArray(), k, n, [zeroPointB]);
        foreach (var (zeroPointA, signedA) in new[] { (128, false), (3, false), (128, false), (3, true), (-5, true), (3, false) })
        {
            var expected = new int[m * n];
            Int8Gemm.MultiplyReference(a, signedA, m, k, zeroPointA, w, true, n, [zeroPointB], expected);
            var actual = new int[m * n];
            Int8Gemm.MultiplyInt32(a, m, zeroPointA, signedA, packed, actual, 1);
            Assert.Equal(expected, actual);
        }
    }

    [Fact]
    public void The_extreme_operands_stay_exact()
    {
        if (!Int8VnniKernels.IsSupported) Assert.Skip("This CPU (or system) has no AVX-512 VNNI.");
        // 255 x -128 in every position: four of them per lane, K = 4100 of them in all (no int16 step to saturate).
        int m = 8, k = 4100, n = 70;
        byte[] a = Enumerable.Repeat((byte)255, m * k).ToArray();
        sbyte[] b = Enumerable.Repeat((sbyte)-128, k * n).ToArray();
        var packed = PackedInt8Matrix.Pack(b, k, n, [0]);
        var actual = new int[m * n];
        Int8Gemm.Multiply(a, m, 0, packed, actual);
        Assert.All(actual, value => Assert.Equal(255 * -128 * k, value));
    }

    private static byte[] Bytes(Random random, int count)
    {
        var bytes = new byte[count];
        random.NextBytes(bytes);
        return bytes;
    }

    /// <summary>Calls the assembler method for one line of the table (the same operand syntax, parsed just enough).</summary>
    private static void Emit(X64Assembler x, string line)
    {
        int space = line.IndexOf(' ');
        string op = space < 0 ? line : line[..space];
        string[] operands = space < 0 ? [] : line[(space + 1)..].Split(", ");
        switch (op)
        {
            case "mov" when operands[1].StartsWith('['): x.Load(Register(operands[0]), Address(operands[1])); break;
            case "mov": x.Move(Register(operands[0]), Register(operands[1])); break;
            case "lea": x.LoadAddress(Register(operands[0]), Address(operands[1])); break;
            case "add" when int.TryParse(operands[1], out int immediate): x.Add(Register(operands[0]), (sbyte)immediate); break;
            case "add": x.Add(Register(operands[0]), Register(operands[1])); break;
            case "dec": x.Decrement(Register(operands[0])); break;
            case "test": x.Test(Register(operands[0]), Register(operands[1])); break;
            case "vzeroupper": x.ZeroUpper(); break;
            case "prefetcht0": x.Prefetch(Address(operands[0])); break;
            case "prefetchw": x.PrefetchForWrite(Address(operands[0])); break;
            case "ret": x.Return(); break;
            case "push": x.Push(Register(operands[0])); break;
            case "pop": x.Pop(Register(operands[0])); break;
            case "vmovdqu32" when operands[0].StartsWith('['): x.StoreVector(Address(operands[0]), Vector(operands[1])); break;
            case "vmovdqu32": x.LoadVector(Vector(operands[0]), Address(operands[1])); break;
            case "vpbroadcastd": x.BroadcastInt32(Vector(operands[0]), Address(operands[1])); break;
            case "vpdpbusd": x.DotProductUnsignedSigned(Vector(operands[0]), Vector(operands[1]), Vector(operands[2])); break;
            case "vpxord": x.Xor(Vector(operands[0]), Vector(operands[1]), Vector(operands[2])); break;
            case "vpaddd" when operands[2].StartsWith('['): x.AddInt32(Vector(operands[0]), Vector(operands[1]), Address(operands[2])); break;
            case "vpaddd": x.AddInt32(Vector(operands[0]), Vector(operands[1]), Vector(operands[2])); break;
            case "vpmulld": x.MultiplyInt32(Vector(operands[0]), Vector(operands[1]), Address(operands[2])); break;
            case "vcvtdq2ps": x.ConvertToSingle(Vector(operands[0]), Vector(operands[1])); break;
            case "vmulps": x.MultiplySingle(Vector(operands[0]), Vector(operands[1]), Address(operands[2])); break;
            case "vaddps": x.AddSingle(Vector(operands[0]), Vector(operands[1]), Address(operands[2])); break;
            default: throw new ArgumentException(line);
        }
    }

    private static Gpr Register(string name) => Enum.Parse<Gpr>(name, ignoreCase: true);

    private static int Vector(string name) => int.Parse(name["zmm".Length..]);

    /// <summary>"[base]", "[base+disp]", "[base+index]", "[base+index*scale+disp]".</summary>
    private static Memory Address(string text)
    {
        var parts = text.Trim('[', ']').Replace("-", "+-").Split('+');
        Gpr baseRegister = Register(parts[0]);
        Gpr? index = null;
        int scale = 1, displacement = 0;
        foreach (var part in parts.Skip(1))
        {
            if (int.TryParse(part, out int value)) displacement = value;
            else
            {
                var pieces = part.Split('*');
                index = Register(pieces[0]);
                if (pieces.Length > 1) scale = int.Parse(pieces[1]);
            }
        }
        return new Memory(baseRegister, index, scale, displacement);
    }
}
