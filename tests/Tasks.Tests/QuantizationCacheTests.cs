using Quantize.Core.Cache;

namespace Quantize.Build.Tasks.Tests;

/// <summary>The content-addressed cache: what the key covers, and entries that are never seen half written.</summary>
public sealed class QuantizationCacheTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("quantize-cache-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string Write(string name, byte[] bytes)
    {
        string path = Path.Combine(_root, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void Key_covers_model_bytes_calibration_names_and_bytes_options_and_version()
    {
        string model = Write("m.onnx", TestModels.Mlp(1));
        string a = Write("cal/s1/x.pb", [1, 2, 3]), b = Write("cal/s2/x.pb", [4, 5]);
        (string, string)[] calibration = [("s1/x.pb", a), ("s2/x.pb", b)];
        string key = QuantizationCacheKey.Compute(model, calibration, "{\"mode\":\"dynamic\"}", "1.0");

        Assert.Matches("^[0-9a-f]{64}$", key);
        Assert.Equal(key, QuantizationCacheKey.Compute(model, calibration.Reverse(), "{\"mode\":\"dynamic\"}", "1.0"));
        Assert.Equal(key, QuantizationCacheKey.Compute(Write("copy/m.onnx", TestModels.Mlp(1)), calibration, "{\"mode\":\"dynamic\"}", "1.0"));
        Assert.Equal(key, QuantizationCacheKey.Compute(model, QuantizationCacheKey.FolderFiles(Path.Combine(_root, "cal")), "{\"mode\":\"dynamic\"}", "1.0"));

        Assert.NotEqual(key, QuantizationCacheKey.Compute(Write("other.onnx", TestModels.Mlp(2)), calibration, "{\"mode\":\"dynamic\"}", "1.0"));
        Assert.NotEqual(key, QuantizationCacheKey.Compute(model, [("s1/x.pb", a)], "{\"mode\":\"dynamic\"}", "1.0"));
        Assert.NotEqual(key, QuantizationCacheKey.Compute(model, [("s1/y.pb", a), ("s2/x.pb", b)], "{\"mode\":\"dynamic\"}", "1.0"));
        Assert.NotEqual(key, QuantizationCacheKey.Compute(model, [("s1/x.pb", b), ("s2/x.pb", a)], "{\"mode\":\"dynamic\"}", "1.0"));
        Assert.NotEqual(key, QuantizationCacheKey.Compute(model, calibration, "{\"mode\":\"static\"}", "1.0"));
        Assert.NotEqual(key, QuantizationCacheKey.Compute(model, calibration, "{\"mode\":\"dynamic\"}", "1.1"));
    }

    [Fact]
    public void Default_folder_is_per_user()
    {
        string folder = QuantizationCache.DefaultDirectory;
        Assert.True(Path.IsPathRooted(folder));
        Assert.EndsWith(Path.Combine("Quantize.Build", "cache"), folder);
    }

    [Fact]
    public void Put_then_get_copies_model_and_report()
    {
        var cache = new QuantizationCache(Path.Combine(_root, "cache"));
        string key = new string('a', 64);
        Assert.False(cache.TryGet(key, Path.Combine(_root, "out", "miss.onnx")));
        Assert.False(File.Exists(Path.Combine(_root, "out", "miss.onnx")));

        cache.Put(key, Write("q.onnx", [9, 8, 7]), Write("q.json", "{}"u8.ToArray()));
        Assert.True(cache.TryGet(key, Path.Combine(_root, "out", "hit.onnx"), Path.Combine(_root, "out", "hit.json")));
        Assert.Equal([9, 8, 7], File.ReadAllBytes(Path.Combine(_root, "out", "hit.onnx")));
        Assert.Equal("{}", File.ReadAllText(Path.Combine(_root, "out", "hit.json")));
        Assert.Throws<ArgumentException>(() => cache.ModelPath("../../etc"));
    }

    [Fact]
    public void Many_threads_putting_and_reading_one_key_never_see_a_partial_entry()
    {
        var cache = new QuantizationCache(Path.Combine(_root, "cache"));
        string key = new string('b', 64);
        // Big enough that a copy is not one write; each writer has its own source file with the same content.
        byte[] content = new byte[3 << 20];
        new Random(5).NextBytes(content);
        var sources = Enumerable.Range(0, 8).Select(i => Write($"src{i}.onnx", content)).ToArray();
        int hits = 0;
        Parallel.For(0, 32, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
        {
            if (i % 2 == 0)
            {
                cache.Put(key, sources[i % sources.Length]);
            }
            else
            {
                string destination = Path.Combine(_root, "readers", $"r{i}.onnx");
                if (cache.TryGet(key, destination))
                {
                    Assert.Equal(content.Length, new FileInfo(destination).Length);
                    Assert.True(content.AsSpan().SequenceEqual(File.ReadAllBytes(destination)), $"reader {i} saw other bytes");
                    Interlocked.Increment(ref hits);
                }
            }
        });
        Assert.Equal(content, File.ReadAllBytes(cache.ModelPath(key)));
        // Every writer renamed or removed its temporary file.
        Assert.Empty(Directory.EnumerateFiles(cache.Directory, "*.tmp", SearchOption.AllDirectories));
        Assert.True(cache.TryGet(key, Path.Combine(_root, "final.onnx")));
    }

    [Fact]
    public void A_killed_writers_temporary_file_is_not_an_entry()
    {
        var cache = new QuantizationCache(Path.Combine(_root, "cache"));
        string key = new string('c', 64);
        // What a writer killed mid-copy leaves behind: a temporary name beside where the entry would go.
        string folder = Path.GetDirectoryName(cache.ModelPath(key))!;
        Directory.CreateDirectory(folder);
        File.WriteAllBytes(Path.Combine(folder, $".{Path.GetFileName(cache.ModelPath(key))}.{Guid.NewGuid():N}.tmp"), [1, 2]);
        Assert.False(cache.TryGet(key, Path.Combine(_root, "x.onnx")));
        cache.Put(key, Write("q.onnx", [3, 4, 5]));
        Assert.True(cache.TryGet(key, Path.Combine(_root, "x.onnx")));
        Assert.Equal([3, 4, 5], File.ReadAllBytes(Path.Combine(_root, "x.onnx")));
    }
}
