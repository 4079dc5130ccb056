using System.Runtime.InteropServices;
using Quantize.Core.Calibration;
using Quantize.Kernels.Models;
using Quantize.Tests;
using Tensor = Quantize.Kernels.Runtime.Tensor;

namespace Quantize.Core.Tests.Calibration;

/// <summary>The .npy/.npz reader against files written here from the NumPy format spec, and one written by NumPy itself.</summary>
public class NumpyFilesTests
{
    public static TheoryData<string, int> DtypesAndVersions()
    {
        var data = new TheoryData<string, int>();
        foreach (string descr in new[] { "<f4", "<f8", "<f2", "<i8", "<i4", "|i1", "|u1", "|b1" })
        {
            foreach (int version in new[] { 1, 2, 3 }) data.Add(descr, version);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(DtypesAndVersions))]
    public void Every_dtype_reads_back_in_every_header_version(string descr, int version)
    {
        int[] shape = [2, 3, 4];
        var random = new Random(descr.GetHashCode(StringComparison.Ordinal) ^ version);
        double[] source = Enumerable.Range(0, 24).Select(i => Math.Round(random.NextDouble() * 200 - 100, 2)).ToArray();
        source[0] = 0;
        (byte[] Bytes, TensorElementType Type, Func<Tensor, double[]> Values, Func<double, double> Stored) expected = descr[1..] switch
        {
            "f4" => (Bytes(source.Select(v => (float)v)), TensorElementType.Float32, t => t.ToArray<float>().Select(v => (double)v).ToArray(), v => (float)v),
            "f8" => (Bytes(source), TensorElementType.Float64, t => t.ToArray<double>(), v => v),
            "f2" => (Bytes(source.Select(v => (Half)v)), TensorElementType.Float16, t => t.ToArray<Half>().Select(v => (double)v).ToArray(), v => (double)(Half)v),
            "i8" => (Bytes(source.Select(v => (long)v * 1_000_000_007L)), TensorElementType.Int64, t => t.ToArray<long>().Select(v => (double)v).ToArray(), v => (long)v * 1_000_000_007L),
            "i4" => (Bytes(source.Select(v => (int)v * 1000)), TensorElementType.Int32, t => t.ToArray<int>().Select(v => (double)v).ToArray(), v => (int)v * 1000),
            "i1" => (Bytes(source.Select(v => (sbyte)v)), TensorElementType.Int8, t => t.ToArray<sbyte>().Select(v => (double)v).ToArray(), v => (sbyte)v),
            "u1" => (Bytes(source.Select(v => (byte)Math.Abs(v))), TensorElementType.UInt8, t => t.ToArray<byte>().Select(v => (double)v).ToArray(), v => (byte)Math.Abs(v)),
            "b1" => (Bytes(source.Select(v => v > 0)), TensorElementType.Bool, t => t.ToArray<bool>().Select(v => v ? 1.0 : 0.0).ToArray(), v => v > 0 ? 1 : 0),
            _ => throw new InvalidOperationException(descr),
        };
        var tensor = NumpyFiles.ReadNpy(new MemoryStream(NumpyWriter.Npy(descr, shape, expected.Bytes, version)), "test.npy");

        Assert.Equal(expected.Type, tensor.ElementType);
        Assert.Equal(shape, tensor.Shape.ToArray());
        Assert.Equal(source.Select(expected.Stored).ToArray(), expected.Values(tensor));
    }

    [Fact]
    public void Scalars_vectors_empty_arrays_and_header_spellings_read()
    {
        var scalar = NumpyFiles.ReadNpy(new MemoryStream(NumpyWriter.Npy("<f8", [], Bytes([2.5]))), "scalar.npy");
        Assert.Equal(0, scalar.Rank);
        Assert.Equal([2.5], scalar.ToArray<double>());

        var vector = NumpyFiles.ReadNpy(new MemoryStream(NumpyWriter.Npy("<i4", [3], Bytes([1, -2, 3]))), "vector.npy");
        Assert.Equal([3], vector.Shape.ToArray());
        Assert.Equal([1, -2, 3], vector.ToArray<int>());

        var empty = NumpyFiles.ReadNpy(new MemoryStream(NumpyWriter.Npy("<f4", [0, 4], [])), "empty.npy");
        Assert.Equal([0, 4], empty.Shape.ToArray());

        // Other key orders, double quotes, no trailing comma, Python 2's long suffix, native byte order.
        string header = "{\"shape\": (2L, 1L), \"fortran_order\": False, \"descr\": \"=f4\"}";
        var spelled = NumpyFiles.ReadNpy(new MemoryStream(NumpyWriter.Npy("", [], Bytes([1f, 2f]), header: header)), "spelled.npy");
        Assert.Equal([2, 1], spelled.Shape.ToArray());
        Assert.Equal([1f, 2f], spelled.ToArray<float>());
    }

    [Fact]
    public void Npz_archives_read_stored_and_deflated_and_only_the_arrays_asked_for()
    {
        using var folder = new TempFolder();
        float[] x = Enumerable.Range(0, 64).Select(i => i * 0.25f - 3).ToArray();
        long[] ids = [101, 2023, 102];
        foreach (bool compressed in new[] { false, true })
        {
            string path = folder[compressed ? "deflated.npz" : "stored.npz"];
            NumpyWriter.Npz(path, [
                ("x", NumpyWriter.NpyOf("<f4", [1, 64], x, major: 1)),
                ("ids", NumpyWriter.NpyOf("<i8", [1, 3], ids, major: 2)),
                ("broken", [1, 2, 3]), // never asked for, so never decoded
            ], compressed);

            var arrays = NumpyFiles.ReadNpz(path, ["ids", "x"]);
            Assert.Equal(x, arrays["x"].ToArray<float>());
            Assert.Equal([1, 64], arrays["x"].Shape.ToArray());
            Assert.Equal(ids, arrays["ids"].ToArray<long>());

            var missing = Assert.Throws<InvalidDataException>(() => NumpyFiles.ReadNpz(path, ["input_ids"]));
            Assert.Contains(path, missing.Message);
            Assert.Contains("'input_ids'", missing.Message);
            Assert.Contains("'x', 'ids', 'broken'", missing.Message);
            var bad = Assert.Throws<InvalidDataException>(() => NumpyFiles.ReadNpz(path, ["broken"]));
            Assert.Contains("array 'broken'", bad.Message);
        }
    }

    public static TheoryData<string, byte[], string> BadFiles() => new()
    {
        { "fortran", NumpyWriter.Npy("<f4", [2, 2], Bytes([1f, 2f, 3f, 4f]), fortranOrder: true), "Fortran" },
        { "big-endian", NumpyWriter.Npy(">f4", [2], Bytes([1f, 2f])), "big-endian" },
        { "uint16", NumpyWriter.Npy("<u2", [2], Bytes(new ushort[] { 1, 2 })), "'<u2' is not supported" },
        { "object", NumpyWriter.Npy("|O", [1], new byte[8]), "'|O' is not supported" },
        { "structured", NumpyWriter.Npy("", [], [], header: "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }"), "structured" },
        { "truncated", NumpyWriter.Npy("<f8", [4], Bytes([1.0, 2.0, 3.0])), "truncated" },
        { "extra bytes", NumpyWriter.Npy("<i4", [1], Bytes([1, 2])), "bytes after the data" },
        { "not npy", "PK\x03\x04 not an array"u8.ToArray(), "not a NumPy .npy file" },
        { "version 4", [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 4, 0, 0, 0], "version 4.0" },
        { "no shape", NumpyWriter.Npy("", [], [], header: "{'descr': '<f4', 'fortran_order': False}"), "lacks" },
        { "bad literal", NumpyWriter.Npy("", [], [], header: "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,)}"), "not a Python dict literal" },
        { "empty", [], "truncated" },
    };

    [Theory]
    [MemberData(nameof(BadFiles))]
    public void Bad_files_get_one_message_naming_the_file(string name, byte[] bytes, string expected)
    {
        using var folder = new TempFolder();
        string path = folder[name + ".npy"];
        File.WriteAllBytes(path, bytes);
        var error = Assert.Throws<InvalidDataException>(() => NumpyFiles.ReadNpy(path));
        Assert.StartsWith(path + ":", error.Message);
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void Damaged_archives_get_one_message_naming_the_file()
    {
        using var folder = new TempFolder();
        string notZip = folder["not-a-zip.npz"];
        File.WriteAllBytes(notZip, NumpyWriter.Npy("<f4", [1], Bytes([1f])));
        var error = Assert.Throws<InvalidDataException>(() => NumpyFiles.ReadNpz(notZip, ["x"]));
        Assert.StartsWith(notZip + ":", error.Message);

        // A deflated entry whose compressed bytes are damaged.
        string damaged = folder["damaged.npz"];
        NumpyWriter.Npz(damaged, [("x", NumpyWriter.Npy("<f4", [4096], Bytes(Enumerable.Range(0, 4096).Select(i => (float)Math.Sin(i)))))], compressed: true);
        byte[] bytes = File.ReadAllBytes(damaged);
        for (int i = 200; i < 1200; i++) bytes[i] ^= 0x5A;
        File.WriteAllBytes(damaged, bytes);
        error = Assert.Throws<InvalidDataException>(() => NumpyFiles.ReadNpz(damaged, ["x"]));
        Assert.StartsWith($"{damaged} (array 'x'):", error.Message);
    }

    [Fact]
    public void A_file_written_by_numpy_reads_as_its_raw_bytes()
    {
        // ../shared/calibration/images: NumPy 1.0-format uint8 [224, 224, 3] files whose data starts at byte 128.
        string path = Path.Combine(SharedData.Require("calibration/images"), "astronaut.npy");
        var tensor = NumpyFiles.ReadNpy(path);
        Assert.Equal(TensorElementType.UInt8, tensor.ElementType);
        Assert.Equal([224, 224, 3], tensor.Shape.ToArray());
        Assert.Equal(File.ReadAllBytes(path).AsSpan(128).ToArray(), tensor.ToArray<byte>());
    }

    private static byte[] Bytes<T>(IEnumerable<T> values) where T : struct => MemoryMarshal.AsBytes(values.ToArray().AsSpan()).ToArray();
}
