using System.Runtime.InteropServices;
using Quantize.Kernels.Models;
using Quantize.Kernels.Quantization;

namespace Quantize.Kernels.Tests.Quantization;

/// <summary>Every vector width of the element kernels equals the scalar twin, on random data with awkward values and odd lengths.</summary>
public class ElementKernelTwinTests
{
    private static readonly int[] Lengths = [0, 1, 3, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 257, 1000];

    public static TheoryData<TensorElementType, bool> Types()
    {
        var data = new TheoryData<TensorElementType, bool>();
        foreach (var type in new[] { TensorElementType.Int8, TensorElementType.UInt8, TensorElementType.Int16, TensorElementType.UInt16, TensorElementType.Int4, TensorElementType.UInt4 })
        {
            data.Add(type, false);
            data.Add(type, true);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void Quantize_vector_widths_equal_the_scalar_twin(TensorElementType type, bool elementwise)
    {
        var random = new Random(1234 + (int)type);
        var range = QuantizedRange.Of(type);
        foreach (int n in Lengths)
        {
            float[] x = AwkwardFloats(random, n);
            float[] scales = elementwise ? Enumerable.Range(0, n).Select(_ => RandomScale(random)).ToArray() : [RandomScale(random)];
            int[] zps = elementwise ? Enumerable.Range(0, n).Select(_ => random.Next(range.Min, range.Max + 1)).ToArray() : [random.Next(range.Min, range.Max + 1)];
            switch (type)
            {
                case TensorElementType.Int8 or TensorElementType.Int4: CompareQuantize<sbyte, SByteStorage>(x, scales, zps, range, elementwise); break;
                case TensorElementType.UInt8 or TensorElementType.UInt4: CompareQuantize<byte, ByteStorage>(x, scales, zps, range, elementwise); break;
                case TensorElementType.Int16: CompareQuantize<short, Int16Storage>(x, scales, zps, range, elementwise); break;
                default: CompareQuantize<ushort, UInt16Storage>(x, scales, zps, range, elementwise); break;
            }
        }
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void Dequantize_vector_widths_equal_the_scalar_twin(TensorElementType type, bool elementwise)
    {
        var random = new Random(4321 + (int)type);
        var range = QuantizedRange.Of(type);
        foreach (int n in Lengths)
        {
            int[] q = Enumerable.Range(0, n).Select(_ => random.Next(range.Min, range.Max + 1)).ToArray();
            float[] scales = elementwise ? Enumerable.Range(0, n).Select(_ => RandomScale(random)).ToArray() : [RandomScale(random)];
            int[] zps = elementwise ? Enumerable.Range(0, n).Select(_ => random.Next(range.Min, range.Max + 1)).ToArray() : [random.Next(range.Min, range.Max + 1)];
            switch (type)
            {
                case TensorElementType.Int8 or TensorElementType.Int4: CompareDequantize<sbyte, SByteStorage>(q.Select(v => (sbyte)v).ToArray(), scales, zps, elementwise); break;
                case TensorElementType.UInt8 or TensorElementType.UInt4: CompareDequantize<byte, ByteStorage>(q.Select(v => (byte)v).ToArray(), scales, zps, elementwise); break;
                case TensorElementType.Int16: CompareDequantize<short, Int16Storage>(q.Select(v => (short)v).ToArray(), scales, zps, elementwise); break;
                default: CompareDequantize<ushort, UInt16Storage>(q.Select(v => (ushort)v).ToArray(), scales, zps, elementwise); break;
            }
        }
    }

    [Fact]
    public void Int4_pack_and_unpack_vector_paths_equal_the_scalar_twins_and_round_trip()
    {
        var random = new Random(77);
        foreach (int n in Lengths.Append(4097))
        {
            foreach (bool signed in new[] { true, false })
            {
                byte[] values = Enumerable.Range(0, n).Select(_ => signed ? (byte)(sbyte)random.Next(-8, 8) : (byte)random.Next(0, 16)).ToArray();
                var fast = new byte[Int4Packing.PackedLength(n)];
                var slow = new byte[fast.Length];
                Int4Packing.Pack(values, fast, vectorized: true);
                Int4Packing.Pack(values, slow, vectorized: false);
                Assert.Equal(slow, fast);
                for (int i = 0; i < n; i++)
                    Assert.Equal(values[i] & 0xF, (fast[i / 2] >> (4 * (i & 1))) & 0xF); // low nibble first

                var back = new byte[n];
                var backSlow = new byte[n];
                Int4Packing.Unpack(fast, back, signed, vectorized: true);
                Int4Packing.Unpack(fast, backSlow, signed, vectorized: false);
                Assert.Equal(backSlow, back);
                Assert.Equal(values, back);
            }
        }
    }

    private static void CompareQuantize<T, TStorage>(float[] x, float[] scales, int[] zps, QuantizedRange range, bool elementwise)
        where T : unmanaged, IEquatable<T>
        where TStorage : IQuantizedStorage<T>
    {
        var reference = new T[x.Length];
        QuantizeLinear.QuantizeReference<T, TStorage>(x, scales, zps, reference, range);
        foreach (var width in new[] { VectorWidth.Vector256, VectorWidth.Vector128, VectorWidth.Scalar })
        {
            var actual = new T[x.Length];
            if (elementwise) QuantizeLinear.QuantizeElementwise<T, TStorage>(x, scales, zps, actual, range, width);
            else QuantizeLinear.QuantizeUniform<T, TStorage>(x, scales[0], zps[0], actual, range, width);
            Assert.True(reference.AsSpan().SequenceEqual(actual), $"{typeof(T).Name} n={x.Length} width={width}: first difference at {FirstDifference(reference, actual)}");
        }
    }

    private static void CompareDequantize<T, TStorage>(T[] q, float[] scales, int[] zps, bool elementwise)
        where T : unmanaged
        where TStorage : IQuantizedStorage<T>
    {
        var reference = new float[q.Length];
        for (int i = 0; i < q.Length; i++)
            reference[i] = DequantizeLinear.DequantizeScalar(TStorage.ToInt32(q[i]), elementwise ? scales[i] : scales[0], elementwise ? zps[i] : zps[0]);
        foreach (var width in new[] { VectorWidth.Vector256, VectorWidth.Vector128, VectorWidth.Scalar })
        {
            var actual = new float[q.Length];
            if (elementwise) DequantizeLinear.DequantizeElementwise<T, TStorage>(q, scales, zps, actual, width);
            else DequantizeLinear.DequantizeUniform<T, TStorage>(q, scales[0], zps[0], actual, width);
            Assert.Equal(MemoryMarshal.Cast<float, int>(reference).ToArray(), MemoryMarshal.Cast<float, int>(actual).ToArray());
        }
    }

    /// <summary>Random values plus the cases rounding and saturation get wrong: exact halves, huge values, infinities, NaN, -0.</summary>
    private static float[] AwkwardFloats(Random random, int n)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++)
        {
            x[i] = (i % 11) switch
            {
                0 => random.Next(-600, 600) + 0.5f,
                1 => float.PositiveInfinity,
                2 => float.NegativeInfinity,
                3 => float.NaN,
                4 => -0f,
                5 => (random.NextSingle() - 0.5f) * 1e30f,
                _ => (random.NextSingle() - 0.5f) * 400f,
            };
        }
        return x;
    }

    private static float RandomScale(Random random) => random.Next(4) == 0 ? 1f : 0.01f + random.NextSingle() * 2f;

    private static int FirstDifference<T>(T[] a, T[] b) where T : IEquatable<T>
    {
        for (int i = 0; i < a.Length; i++)
        {
            if (!a[i].Equals(b[i])) return i;
        }
        return -1;
    }
}
